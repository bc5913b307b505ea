import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SessionCache } from '../engine/runtime.js';
import { writeFileAtomic } from '../io/files-node.js';
import { isOutline } from '../onnx/outline.js';
import { decodeModel } from '../onnx/proto.js';
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

/** False with CAMERAS_SESSION_CACHE=0: nothing is read from or written to the cache's per-model files. */
export function sessionCacheOn(): boolean {
  return process.env.CAMERAS_SESSION_CACHE !== '0';
}

/** `<cache>/sessions/`: the optimised graphs, their weights and names, and the models' outlines. */
function sessionsFolder(): string {
  return join(cacheDir(), 'sessions');
}

/** A file name for what `parts` name, with the builder's version in it: a new version never meets an old file. */
function cachedName(...parts: string[]): string {
  return createHash('sha256')
    .update([...parts, builderVersion()].join('\u0000'))
    .digest('hex')
    .slice(0, 40);
}

/** Replaced weights files are removed once this old (see `put`). */
const STALE_WEIGHTS_MS = 3_600_000;

/**
 * ONNX Runtime's optimised gradient graphs of one model, kept in `<cache>/sessions/` (off with
 * CAMERAS_SESSION_CACHE=0). `identity` names the model: its file's path, size and time, or a hash of its bytes.
 */
export function sessionCacheFor(identity: string): SessionCache | undefined {
  if (!sessionCacheOn()) return undefined;
  const folder = sessionsFolder();
  const base = (key: string) => join(folder, cachedName(identity, key));
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
      try {
        mkdirSync(folder, { recursive: true });
      } catch {
        return undefined; // An unwritable cache only costs building the session next time.
      }
      const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
      // The weights keep their own unique name: a process mapping an older file is never written over.
      return { path: `${base(key)}.partial-${tag}.onnx`, weightsFile: `${basename(base(key))}.${tag}.weights` };
    },
    async put(key, temporary, meta) {
      const final = base(key);
      const tag = temporary.weightsFile.slice(basename(final).length + 1, -'.weights'.length);
      try {
        await rename(temporary.path, `${final}.onnx`);
      } catch {
        await this.discard(temporary);
        return;
      }
      // The model first, its names last: a reader that finds the names finds the whole model. From here on the
      // weights belong to the model in place, whatever happens to the names.
      try {
        await writeFile(`${final}.json.partial-${tag}`, JSON.stringify(meta));
        await rename(`${final}.json.partial-${tag}`, `${final}.json`);
      } catch {
        await rm(`${final}.json.partial-${tag}`, { force: true }).catch(() => undefined);
      }
      // Weights of models this one replaced (a broken one, or a writer that raced this one), once they are an hour
      // old: a concurrent writer's are younger, and a process still mapping old ones keeps them on a local disk.
      const prefix = `${basename(final)}.`;
      for (const name of await readdir(folder).catch(() => [] as string[])) {
        if (!name.startsWith(prefix) || !name.endsWith('.weights') || name === temporary.weightsFile) continue;
        const info = await stat(join(folder, name)).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > STALE_WEIGHTS_MS) await rm(join(folder, name), { force: true }).catch(() => undefined);
      }
    },
    async discard(temporary) {
      await rm(temporary.path, { force: true }).catch(() => undefined);
      await rm(join(folder, temporary.weightsFile), { force: true }).catch(() => undefined);
    },
  };
}

/**
 * The outline of a model (`outlineModel`: its graph without large weights) kept beside its sessions, so a later
 * process finds layers and shapes without reading the weights (VGG-16: 553 MB). Undefined with the cache off.
 */
export function outlineStoreFor(
  identity: string,
): { read(): Promise<Uint8Array | undefined>; keep(outline: Uint8Array): Promise<void> } | undefined {
  if (!sessionCacheOn()) return undefined;
  const file = join(sessionsFolder(), `${cachedName('outline', identity)}.outline.onnx`);
  return {
    // One that does not parse (cut short, overwritten) is as good as none: the model is read and it is made again.
    read: async () => {
      const bytes = await readFile(file).catch(() => undefined);
      if (!bytes) return undefined;
      try {
        return isOutline(decodeModel(bytes)) ? new Uint8Array(bytes) : undefined;
      } catch {
        return undefined;
      }
    },
    keep: async (outline) => {
      await mkdir(sessionsFolder(), { recursive: true });
      await writeFileAtomic(file, outline);
    },
  };
}

/** A model file's identity for the cache: its path, size and modification time (no need to read it). */
export async function fileIdentity(path: string): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  // The inode and its change time too: a package install sets every file's modification time to the same 1985 date.
  return info?.isFile() ? `file:${path}:${info.size}:${info.mtimeMs}:${info.ino}:${info.ctimeMs}` : undefined;
}

/**
 * A model file's identity with its external data's: the files beside it whose names start with its own
 * (`vit.onnx.data`, `vit.onnx_data`), as exporters name them, so a changed data file is a changed model.
 */
export async function modelFileIdentity(path: string): Promise<string | undefined> {
  const own = await fileIdentity(path);
  if (!own) return own;
  const name = basename(path);
  const beside = (await readdir(dirname(path)).catch(() => [] as string[])).filter((n) => n !== name && n.startsWith(name)).sort();
  const data = await Promise.all(beside.map((n) => fileIdentity(join(dirname(path), n))));
  return [own, ...data.filter((d) => d !== undefined)].join('+');
}

/** Bytes' identity for the cache: their hash. */
export function bytesIdentity(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
