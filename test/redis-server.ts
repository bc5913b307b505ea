import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** A loopback port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/**
 * A real redis-server (Debian's) on loopback for the job-engine tests and bench, restartable on the same port and
 * data. `durable`: the append-only file on with a sync per write, so a killed server loses nothing.
 */
export class RedisServer {
  private process?: ChildProcess;
  readonly dir: string;

  private constructor(
    readonly port: number,
    parent: string,
    private readonly durable: boolean,
  ) {
    this.dir = mkdtempSync(join(parent, 'redis-'));
  }

  /** Started on a free port, its data under `parent`. */
  static async start(parent: string, options: { durable?: boolean } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), parent, options.durable ?? false);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persistence = this.durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    this.process = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, ...persistence, '--save', ''],
      {
        stdio: 'ignore',
      },
    );
    for (let i = 0; i < 100; i++) {
      if (spawnSync('redis-cli', ['-p', String(this.port), 'ping'], { encoding: 'utf8' }).stdout?.includes('PONG')) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('redis-server did not start');
  }

  /** Killed outright (no save on shutdown): only the append-only file, when durable, keeps the queue. */
  async kill(): Promise<void> {
    const exited = new Promise((r) => this.process?.once('exit', r));
    this.process?.kill('SIGKILL');
    await exited;
  }
}
