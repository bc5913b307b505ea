import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CamerasError } from '../errors.js';
import { inlineExternalData } from '../onnx/external-data.js';
import { OnnxGraph } from '../onnx/graph.js';
import { downloadOnce } from './download-node.js';
import { buildInception } from './inception.js';
import { buildResnet } from './resnet.js';
import { parseSafetensors } from './safetensors.js';
import { convertTfjsModel, decodeTfjsWeights, type TfjsModelJson } from './tfjs.js';
import { buildDensenet, buildVgg } from './vgg-densenet.js';
import { ONLINE, TORCHVISION, ZOO, type ZooEntry, zooEntry } from './zoo.js';

/** Where converted models are kept: $CAMERAS_CACHE_DIR, else $XDG_CACHE_HOME/cameras-saliency, else ~/.cache/cameras-saliency. */
export function cacheDir(): string {
  return process.env.CAMERAS_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cameras-saliency');
}

interface NsfwjsModel {
  modelJson: () => Promise<{ default?: unknown }>;
}

const NSFWJS_EXPORTS: Record<string, [string, string]> = {
  'nsfwjs:mobilenet_v2': ['nsfwjs/models/mobilenet_v2', 'MobileNetV2Model'],
  'nsfwjs:inception_v3': ['nsfwjs/models/inception_v3', 'InceptionV3Model'],
};

/** The longest double-quoted literal in a file (a scan: a regex over megabytes overflows the stack). */
function longestStringLiteral(text: string): string | undefined {
  let best: [number, number] | undefined;
  for (let start = text.indexOf('"'); start >= 0; ) {
    const end = text.indexOf('"', start + 1);
    if (end < 0) break;
    if (!best || end - start > best[1] - best[0]) best = [start + 1, end];
    start = text.indexOf('"', end + 1);
  }
  const literal = best ? text.slice(best[0], best[1]) : undefined;
  return literal && literal.length > 1000 && /^[A-Za-z0-9+/]+={0,2}$/.test(literal.slice(-64)) ? literal : undefined;
}

/** Reads an nsfwjs model from the installed package (a devDependency) and converts it to ONNX. */
export async function convertNsfwjs(name: string): Promise<Uint8Array> {
  const [specifier, exported] = NSFWJS_EXPORTS[name] as [string, string];
  const require = createRequire(import.meta.url);
  let model: NsfwjsModel;
  try {
    model = (require(specifier) as Record<string, NsfwjsModel>)[exported] as NsfwjsModel;
  } catch {
    throw new CamerasError(
      `${name} is not built and the nsfwjs package is not installed; run 'npm run build:models' in a clone with its devDependencies`,
    );
  }
  const unwrap = (m: { default?: unknown }) => m.default ?? m;
  const json = unwrap(await model.modelJson()) as TfjsModelJson;
  // Each shard is a UMD module around one base64 string literal. Requiring it makes V8 parse megabytes of
  // source (35 s for InceptionV3's six); reading the literal out of the file takes milliseconds.
  const folder = join(dirname(require.resolve(specifier)), '..', '..', 'models', name.split(':')[1] as string);
  const shards: Uint8Array[] = [];
  for (const path of json.weightsManifest.flatMap((group) => group.paths)) {
    const text = await readFile(join(folder, `${path}.min.js`), 'utf8');
    const literal = longestStringLiteral(text);
    if (!literal) throw new CamerasError(`nsfwjs weight file ${path} is not in the expected form; reinstall nsfwjs@4.4.0`);
    shards.push(new Uint8Array(Buffer.from(literal, 'base64')));
  }
  return convertTfjsModel(json, decodeTfjsWeights(json, shards));
}

/** A file shipped in the package, by its path from the package root. */
function packageFile(path: string): string {
  return fileURLToPath(new URL(`../../../${path}`, import.meta.url));
}

/** Where the build puts a converted nsfwjs model in the package: assets/models/nsfwjs_<name>.onnx. */
export function bundledModelPath(name: string): string {
  return packageFile(`assets/models/${name.replace(/[^a-z0-9_.-]/gi, '_')}.onnx`);
}

/** Throws the parser's one-line error when the bytes are not an ONNX model. */
function validOnnx(bytes: Uint8Array, source: string): void {
  OnnxGraph.fromBytes(bytes, source);
}

/**
 * A zoo model's ONNX bytes: the file the package ships (`bundled`), else from the cache, else converted and cached
 * (written whole, then renamed). A cached file that does not parse (cut short, overwritten) is converted again.
 */
export async function loadZooModel(entry: ZooEntry, bundled = bundledModelPath(entry.name)): Promise<Uint8Array> {
  // Shipped in the package: converted at build time (npm run build:models), so nsfwjs and TF.js stay dev-only.
  const shipped = await readFile(bundled).catch(() => undefined);
  if (shipped) return new Uint8Array(shipped);
  const file = join(cacheDir(), `${entry.name.replace(/[^a-z0-9_.-]/gi, '_')}.onnx`);
  const cached = await readFile(file).catch(() => undefined);
  if (cached) {
    try {
      validOnnx(new Uint8Array(cached), file);
      return new Uint8Array(cached);
    } catch {
      await rm(file, { force: true });
    }
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

/** A TF.js layers model from its model.json and the weight files beside it, converted to ONNX. */
export async function convertTfjsFile(path: string): Promise<Uint8Array> {
  let json: TfjsModelJson;
  try {
    json = JSON.parse(await readFile(path, 'utf8')) as TfjsModelJson;
  } catch (error) {
    throw new CamerasError(`cannot read TF.js model ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if ((json.modelTopology as { node?: unknown } | undefined)?.node)
    throw new CamerasError(
      `${path} is a TF.js graph model; only TF.js layers models convert here: convert the original model to ONNX (tf2onnx) and pass the .onnx`,
    );
  if (!json.modelTopology || !json.weightsManifest)
    throw new CamerasError(`${path} is not a TF.js layers model (no modelTopology or weightsManifest)`);
  const shards: Uint8Array[] = [];
  for (const shard of json.weightsManifest.flatMap((group) => group.paths)) {
    try {
      shards.push(new Uint8Array(await readFile(join(dirname(path), shard))));
    } catch {
      throw new CamerasError(`the weight file ${shard} of ${path} is missing; keep it beside model.json`);
    }
  }
  return convertTfjsModel(json, decodeTfjsWeights(json, shards));
}

/** ImageNet's 1000 class names (from torchvision's weight metadata), shipped in assets/labels. */
export async function imagenetLabels(): Promise<string[]> {
  return JSON.parse(await readFile(new URL('../../../assets/labels/imagenet.json', import.meta.url), 'utf8')) as string[];
}

/** A torchvision architecture built from the user's state dict. */
async function buildTorchvision(entry: ZooEntry, weightsPath: string | undefined): Promise<Uint8Array> {
  const arch = entry.name.split(':')[1] as string;
  if (!weightsPath) {
    throw new CamerasError(
      `${entry.name} is built from your weights: add --weights ${arch}.safetensors (its torchvision state dict saved with safetensors)`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(weightsPath));
  } catch (error) {
    throw new CamerasError(
      `cannot read weights ${weightsPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`,
    );
  }
  const state = parseSafetensors(bytes, weightsPath);
  if (arch.startsWith('resnet')) return buildResnet(state);
  if (arch === 'vgg16') return buildVgg(state);
  if (arch === 'inception_v3') return buildInception(state, { transformInput: true });
  return buildDensenet(state);
}

const isUrl = (spec: string) => /^https?:\/\//.test(spec);

/** A `name:` prefix (an unknown zoo name), not a Windows drive letter. */
const hasScheme = (spec: string) => /^[a-z]+:/i.test(spec) && !/^[a-z]:[\\/]/i.test(spec);

/**
 * The ONNX file on disk that `resolveModel(spec)` reads as it is (a model path, a shipped or bundled zoo model),
 * or undefined where the model is built, converted or downloaded.
 */
export async function modelFile(spec: string): Promise<string | undefined> {
  const entry = zooEntry(spec);
  const candidate = entry
    ? entry.needsWeights || entry.url
      ? undefined
      : entry.file
        ? packageFile(entry.file)
        : bundledModelPath(entry.name)
    : isUrl(spec) || spec.endsWith('.json') || hasScheme(spec)
      ? undefined
      : resolve(spec);
  if (!candidate) return undefined;
  return (await stat(candidate).catch(() => undefined))?.isFile() ? candidate : undefined;
}

/** A model by zoo name, .onnx path or TF.js model.json path, with its zoo entry when it has one. */
export async function resolveModel(spec: string, weights?: string): Promise<{ bytes: Uint8Array; entry?: ZooEntry; source: string }> {
  const entry = zooEntry(spec);
  if (entry?.needsWeights)
    return { bytes: await buildTorchvision(entry, weights), entry: { ...entry, labels: await imagenetLabels() }, source: spec };
  if (entry?.url) {
    const bytes = await downloadOnce(entry.url, join(cacheDir(), 'downloads'), { validate: validOnnx });
    return { bytes, entry: { ...entry, labels: entry.labels.length ? entry.labels : await imagenetLabels() }, source: spec };
  }
  if (entry?.file) {
    return { bytes: new Uint8Array(await readFile(packageFile(entry.file))), entry, source: spec };
  }
  if (entry) return { bytes: await loadZooModel(entry), entry, source: spec };
  if (isUrl(spec)) {
    if (!spec.endsWith('.onnx'))
      throw new CamerasError(`${spec}: only .onnx files download by URL; download other formats yourself and pass the file`);
    return { bytes: await downloadOnce(spec, join(cacheDir(), 'downloads'), { validate: validOnnx }), source: spec };
  }
  if (spec.endsWith('.json')) return { bytes: await convertTfjsFile(spec), source: spec };
  if (hasScheme(spec)) {
    throw new CamerasError(
      `unknown model '${spec}'; give an .onnx file or one of: ${[...ZOO, ...TORCHVISION, ...ONLINE].map((e) => e.name).join(', ')} (see 'cameras models')`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(spec));
  } catch (error) {
    throw new CamerasError(
      `cannot read model ${spec}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give an .onnx file or a zoo name (see 'cameras models')`,
    );
  }
  return { bytes: await withDataBeside(spec, bytes), source: spec };
}

/** ONNX bytes read from `path` with the external data files they name, from the model's folder, read into them. */
export function withDataBeside(path: string, bytes: Uint8Array): Promise<Uint8Array> {
  return inlineExternalData(
    bytes,
    async (location) => {
      try {
        return new Uint8Array(await readFile(join(dirname(path), location)));
      } catch (error) {
        throw new CamerasError(
          `${path} keeps its weights in '${location}', which cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); keep the data file beside the model`,
        );
      }
    },
    path,
  );
}
