/**
 * cameras-saliency: CAMERAS saliency maps for ONNX image classifiers.
 *
 * The Node entry point: everything of the isomorphic core (`cameras-saliency/core`), wired to ONNX Runtime for
 * Node, files and image decoding:
 *
 *     import { createExplainer, loadImageTensor } from 'cameras-saliency';
 *     const explainer = await createExplainer({ model: 'resnet50.onnx', layer: 'layer4' });
 *     const result = await explainer.explain(await loadImageTensor('cat.jpg'), { classIndex: 281 });
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CamerasError } from './errors.js';
import { Explainer, type ExplainerConfig } from './explainer.js';
import { readImage } from './io/image-node.js';
import { type FloatArray, formatNpy, parseNpy } from './io/npy.js';
import { preprocess, presetByName } from './io/preprocess.js';
import { resolveModel } from './models/zoo-node.js';

export * from './core.js';
export { readImage } from './io/image-node.js';

/** Reads a model file; a missing or unreadable file fails with one line. */
export async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CamerasError(
      `cannot read model ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`,
    );
  }
}

/**
 * An explainer on ONNX Runtime for Node. `model` is a file path, a zoo name (`nsfwjs:mobilenet_v2`,
 * `torchvision:resnet50` with `weights`, `onnx:resnet50-v1-7`; see `cameras models`), an .onnx URL, or the model's
 * bytes. A zoo model's own layer is the default target.
 */
export async function createExplainer(
  options: Omit<ExplainerConfig, 'model' | 'source'> & { model: string | Uint8Array; weights?: string },
): Promise<Explainer> {
  const { model, weights, ...config } = options;
  if (typeof model !== 'string') return Explainer.create(ort, { ...config, model, source: 'model' });
  const resolved = await resolveModel(model, weights);
  return Explainer.create(ort, {
    ...config,
    layer: config.layer ?? (resolved.entry?.layer || undefined),
    model: resolved.bytes,
    source: model,
  });
}

/** Decodes an image file and preprocesses it (default: the authors' `torchvision` preset). */
export async function loadImageTensor(path: string, preset = 'torchvision'): Promise<FloatArray> {
  const chosen = presetByName(preset);
  return preprocess(await readImage(path), chosen);
}

export async function readNpyFile(path: string): Promise<FloatArray> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CamerasError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`);
  }
  return parseNpy(bytes, path);
}

/** Writes a file whole or not at all: to a temporary name first, then renamed into place. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${path}.partial-${process.pid}`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new CamerasError(
      `cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check that ${dirname(path)} exists and is writable`,
    );
  }
}

export async function writeNpyFile(path: string, array: FloatArray): Promise<void> {
  await writeFileAtomic(path, formatNpy(array));
}
