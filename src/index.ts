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
import * as ort from 'onnxruntime-node';
import { Explainer, type ExplainerConfig } from './explainer.js';
import { readImage } from './io/image-node.js';
import type { FloatArray } from './io/npy.js';
import { preprocess, presetByName } from './io/preprocess.js';
import { openExplainer } from './jobs/loaded-model.js';

export * from './core.js';
export { readNpyFile, writeFileAtomic, writeNpyFile } from './io/files-node.js';
export { readImage } from './io/image-node.js';
export { readModelFile } from './jobs/loaded-model.js';

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
  return (await openExplainer(model, { ...config, weights })).explainer;
}

/** Decodes an image file and preprocesses it (default: the authors' `torchvision` preset). */
export async function loadImageTensor(path: string, preset = 'torchvision'): Promise<FloatArray> {
  const chosen = presetByName(preset);
  return preprocess(await readImage(path), chosen);
}
