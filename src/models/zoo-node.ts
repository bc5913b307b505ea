import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CamerasError } from '../errors.js';
import { convertTfjsModel, decodeTfjsWeights, type TfjsModelJson } from './tfjs.js';
import { ZOO, type ZooEntry, zooEntry } from './zoo.js';

/** Where converted models are kept: $CAMERAS_CACHE_DIR, else $XDG_CACHE_HOME/cameras-saliency, else ~/.cache/cameras-saliency. */
export function cacheDir(): string {
  return process.env.CAMERAS_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cameras-saliency');
}

interface NsfwjsModel {
  modelJson: () => Promise<{ default?: unknown }>;
  weightBundles: (() => Promise<{ default?: unknown }>)[];
}

const NSFWJS_EXPORTS: Record<string, [string, string]> = {
  'nsfwjs:mobilenet_v2': ['nsfwjs/models/mobilenet_v2', 'MobileNetV2Model'],
  'nsfwjs:inception_v3': ['nsfwjs/models/inception_v3', 'InceptionV3Model'],
};

/** Reads an nsfwjs model from the installed package and converts it to ONNX. */
async function convertNsfwjs(name: string): Promise<Uint8Array> {
  const [specifier, exported] = NSFWJS_EXPORTS[name] as [string, string];
  const require = createRequire(import.meta.url);
  let model: NsfwjsModel;
  try {
    model = (require(specifier) as Record<string, NsfwjsModel>)[exported] as NsfwjsModel;
  } catch {
    throw new CamerasError(`the nsfwjs package is not installed; run 'npm install nsfwjs@4.4.0' to use ${name}`);
  }
  const unwrap = (m: { default?: unknown }) => m.default ?? m;
  const json = unwrap(await model.modelJson()) as TfjsModelJson;
  const shards: Uint8Array[] = [];
  for (const bundle of model.weightBundles) {
    const text = unwrap(await bundle()) as string;
    shards.push(new Uint8Array(Buffer.from(text, 'base64')));
  }
  return convertTfjsModel(json, decodeTfjsWeights(json, shards));
}

/** A zoo model's ONNX bytes: from the cache, else converted and cached (written whole, then renamed). */
export async function loadZooModel(entry: ZooEntry): Promise<Uint8Array> {
  const file = join(cacheDir(), `${entry.name.replace(/[^a-z0-9_.-]/gi, '_')}.onnx`);
  try {
    return new Uint8Array(await readFile(file));
  } catch {
    // not cached yet
  }
  const bytes = await convertNsfwjs(entry.name);
  try {
    await mkdir(cacheDir(), { recursive: true });
    const partial = `${file}.partial-${process.pid}`;
    await writeFile(partial, bytes);
    await rename(partial, file);
  } catch {
    // An unwritable cache only costs a conversion next time.
  }
  return bytes;
}

/** A model by zoo name or .onnx path, with its zoo entry when it has one. */
export async function resolveModel(spec: string): Promise<{ bytes: Uint8Array; entry?: ZooEntry; source: string }> {
  const entry = zooEntry(spec);
  if (entry) return { bytes: await loadZooModel(entry), entry, source: spec };
  if (/^[a-z]+:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec)) {
    throw new CamerasError(
      `unknown model '${spec}'; give an .onnx file or one of: ${ZOO.map((e) => e.name).join(', ')} (see 'cameras models')`,
    );
  }
  try {
    return { bytes: new Uint8Array(await readFile(spec)), source: spec };
  } catch (error) {
    throw new CamerasError(
      `cannot read model ${spec}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give an .onnx file or a zoo name (see 'cameras models')`,
    );
  }
}
