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
import { Explainer } from './explainer.js';
import { readImage } from './io/image-node.js';
import type { FloatArray } from './io/npy.js';
import { preprocess, presetByName } from './io/preprocess.js';
import { type OpenOptions, openExplainer } from './models/open-node.js';

export * from './core.js';
export { readNpyFile, writeFileAtomic, writeNpyFile } from './io/files-node.js';
export { readImage } from './io/image-node.js';
export type { OpenOptions } from './models/open-node.js';
export { readModelFile } from './models/open-node.js';

/**
 * An explainer on ONNX Runtime for Node. `model` is a file path, a zoo name (`nsfwjs:mobilenet_v2`,
 * `torchvision:resnet50` with `weights`, `onnx:resnet50-v1-7`; see `cameras models`), an .onnx URL, or the model's
 * bytes. Its `profile` (preprocessing, input size, resolutions, labels, layer, outputs) is the zoo's for a zoo model,
 * inferred from the graph otherwise; `profile` and `layer` override it. The CLI opens models the same way, so both
 * give the same map.
 */
export async function createExplainer(options: OpenOptions & { model: string | Uint8Array }): Promise<Explainer> {
  const { model, weights, ...config } = options;
  if (typeof model !== 'string') return Explainer.create(ort, { ...config, model, source: 'model' });
  return openExplainer(model, { ...config, weights });
}

/**
 * Decodes an image file and preprocesses it as the model's profile says (given an explainer), or by a preset's
 * name (default: the authors' `torchvision` preset, at its 224 px).
 */
export async function loadImageTensor(path: string, model: Explainer | string = 'torchvision'): Promise<FloatArray> {
  const image = await readImage(path);
  return typeof model === 'string' ? preprocess(image, presetByName(model)) : model.preprocess(image);
}
