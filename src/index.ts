/**
 * cameras-saliency: CAMERAS saliency maps for ONNX image models.
 *
 * The Node entry point: everything of the isomorphic core (`cameras-saliency/core`), wired to ONNX Runtime for
 * Node, files and image decoding:
 *
 *     import { createExplainer, loadImageTensor } from 'cameras-saliency';
 *     const explainer = await createExplainer({ model: 'resnet50.onnx', layer: 'layer4' });
 *     const result = await explainer.explain(await loadImageTensor('cat.jpg', explainer), { classIndex: 281 });
 */
import type { Explainer } from './explainer.js';
import { readImage } from './io/image-node.js';
import type { FloatArray } from './io/npy.js';
import { preprocess, presetByName } from './io/preprocess.js';
import { type OpenOptions, openExplainer } from './models/open-node.js';

export * from './core.js';
export { readNpyFile, writeFileAtomic, writeNpyFile } from './io/files-node.js';
export { readImage, readMask } from './io/image-node.js';
export type { OpenOptions } from './models/open-node.js';
export { readModelFile, targetOf } from './models/open-node.js';

/**
 * An explainer on ONNX Runtime for Node. `model` is a file path, a zoo name (`nsfwjs:mobilenet_v2`,
 * `torchvision:resnet50` with `weights`, `onnx:resnet50-v1-7`; see `cameras models`), an .onnx URL, or the model's
 * bytes. Its `profile` (preprocessing, input size, resolutions, labels, layer, outputs) is the zoo's for a zoo model,
 * inferred from the graph otherwise; `profile` and `layer` override it. The CLI opens models the same way, so both
 * give the same map.
 */
export async function createExplainer(options: OpenOptions & { model: string | Uint8Array }): Promise<Explainer> {
  const { model, ...config } = options;
  return openExplainer(model, config);
}

/**
 * Decodes an image file and preprocesses it as the model's profile says (give the explainer: a zoo model then gets
 * its own preset and size), or by a preset's name at the preset's 224 px (default: the authors' `torchvision`).
 */
export async function loadImageTensor(path: string, profileOrPreset: Explainer | string = 'torchvision'): Promise<FloatArray> {
  const image = await readImage(path);
  return typeof profileOrPreset === 'string' ? preprocess(image, presetByName(profileOrPreset)) : profileOrPreset.preprocess(image);
}
