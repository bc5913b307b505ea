import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { access, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SessionCache } from '../engine/runtime.js';
import { cacheDir } from './zoo-node.js';

let codeVersion: string | undefined;

/**
 * What the cached graphs depend on besides the model: ONNX Runtime's version and the code that builds gradient
 * graphs (a hash of its compiled files, so a change to a rule never meets an old cached graph).
 */
function builderVersion(): string {
  if (codeVersion) return codeVersion;
  const hash = createHash('sha256');
  const onnx = fileURLToPath(new URL('../onnx/', import.meta.url));
  for (const folder of [onnx, join(onnx, 'vjp')])
    for (const name of readdirSync(folder)
      .filter((n) => n.endsWith('.js'))
      .sort())
      hash.update(readFileSync(join(folder, name)));
  hash.update(createRequire(import.meta.url)('onnxruntime-node/package.json').version as string);
  codeVersion = hash.digest('hex');
  return codeVersion;
}

/**
 * ONNX Runtime's optimised gradient graphs of one model, kept in `<cache>/sessions/` (off with
 * CAMERAS_SESSION_CACHE=0). `identity` names the model: its file's path, size and time, or a hash of its bytes.
 */
export function sessionCacheFor(identity: string): SessionCache | undefined {
  if (process.env.CAMERAS_SESSION_CACHE === '0') return undefined;
  const folder = join(cacheDir(), 'sessions');
  const base = (key: string) =>
    join(folder, createHash('sha256').update(`${identity}\u0000${key}\u0000${builderVersion()}`).digest('hex').slice(0, 40));
  return {
    async get(key) {
      try {
        const meta: unknown = JSON.parse(await readFile(`${base(key)}.json`, 'utf8'));
        await access(`${base(key)}.onnx`);
        return { path: `${base(key)}.onnx`, meta };
      } catch {
        return undefined;
      }
    },
    temporary(key) {
      mkdirSync(folder, { recursive: true });
      return `${base(key)}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}.onnx`;
    },
    async put(key, temporary, meta) {
      try {
        // The model first, its names last: a reader that finds the names finds the whole model.
        await rename(temporary, `${base(key)}.onnx`);
        await writeFile(`${base(key)}.json.partial-${process.pid}`, JSON.stringify(meta));
        await rename(`${base(key)}.json.partial-${process.pid}`, `${base(key)}.json`);
      } catch {
        await rm(temporary, { force: true }).catch(() => undefined);
      }
    },
  };
}

/** A model file's identity for the cache: its path, size and modification time (no need to read it). */
export async function fileIdentity(path: string): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  return info?.isFile() ? `file:${path}:${info.size}:${info.mtimeMs}` : undefined;
}

/** Bytes' identity for the cache: their hash. */
export function bytesIdentity(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
