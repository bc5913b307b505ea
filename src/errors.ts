/**
 * The one error type the library throws for bad input. `message` is a single line that names the
 * problem and the fix; the CLI prints it as is and exits with `exitCode`.
 */
export class CamerasError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message.replace(/\s*\n\s*/g, ' '));
    this.name = 'CamerasError';
    this.exitCode = exitCode;
  }
}

/** Exit codes shared by the CLI and documented in the README. */
export const ExitCode = {
  ok: 0,
  /** Internal failure: a bug, please report it. */
  internal: 1,
  /** Bad input: a file, flag or value the user can fix. */
  usage: 2,
  /** The model uses an operator we cannot differentiate. */
  unsupportedModel: 3,
} as const;
