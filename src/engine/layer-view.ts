import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';

/**
 * How the target layer's tensor becomes the `[N, C, H, W]` map the CAM methods and CAMERAS read (what
 * pytorch-grad-cam's `reshape_transform` does):
 * - `nchw`: as it is (CNNs);
 * - `nhwc`: channels last, `[N, H, W, C]` permuted (Swin's blocks, Keras-style layouts);
 * - `tokens`: a transformer's `[N, prefix + h * w, C]`, its first `prefix` tokens (class, distillation) dropped and
 *   the rest laid on the `h x w` grid of patches. The grid is the input's size over the patch size; `patch` is
 *   found from the token count where not given.
 */
export type LayerView = { kind: 'nchw' } | { kind: 'nhwc' } | { kind: 'tokens'; prefix?: number; patch?: number };

/** `nchw`, `nhwc`, `tokens` or `tokens:<prefix>` (the CLI's `--layer-view`). */
export function parseLayerView(text: string): LayerView {
  if (text === 'nchw' || text === 'nhwc') return { kind: text };
  const tokens = /^tokens(?::(\d+))?$/.exec(text);
  if (tokens) return tokens[1] === undefined ? { kind: 'tokens' } : { kind: 'tokens', prefix: Number(tokens[1]) };
  throw new CamerasError(`unknown layer view '${text}'; use nchw, nhwc, tokens or tokens:<prefix tokens>`);
}

export function layerViewName(view: LayerView): string {
  return view.kind === 'tokens' && view.prefix !== undefined ? `tokens:${view.prefix}` : view.kind;
}

/** A token view's grid for an input of `height x width`: the prefix and patch that explain `count` tokens. */
export function tokenGrid(view: { prefix?: number; patch?: number }, count: number, height: number, width: number) {
  for (const prefix of view.prefix !== undefined ? [view.prefix] : [1, 0, 2]) {
    const patches = count - prefix;
    if (patches <= 0) continue;
    const patch = view.patch ?? Math.round(Math.sqrt((height * width) / patches));
    const [h, w] = [Math.floor(height / patch), Math.floor(width / patch)];
    if (h * w === patches) return { prefix, h, w };
  }
  throw new CamerasError(
    `the layer's ${count} tokens do not lay out on a grid of the ${height} x ${width} input's patches; give the layer view (tokens:<prefix>) or another layer`,
  );
}

/** The view's `[N, C, H, W]` of a layer tensor, for an input of `height x width`. */
export function viewAsNchw(view: LayerView, tensor: FloatArray, height: number, width: number): FloatArray {
  if (view.kind === 'nchw') return tensor;
  const shape = tensor.shape;
  if (view.kind === 'nhwc') {
    if (shape.length !== 4) throw new CamerasError(`the layer's output has shape [${shape.join(', ')}], not channels-last [N, H, W, C]`);
    const [n, h, w, c] = shape as [number, number, number, number];
    return { data: permute(tensor.data, n, h * w, c), shape: [n, c, h, w] };
  }
  if (shape.length !== 3) throw new CamerasError(`the layer's output has shape [${shape.join(', ')}], not tokens [N, T, C]`);
  const [n, count, c] = shape as [number, number, number];
  const grid = tokenGrid(view, count, height, width);
  const kept = new Float32Array(n * grid.h * grid.w * c);
  for (let b = 0; b < n; b++) kept.set(tensor.data.subarray((b * count + grid.prefix) * c, (b + 1) * count * c), b * grid.h * grid.w * c);
  return { data: permute(kept, n, grid.h * grid.w, c), shape: [n, c, grid.h, grid.w] };
}

/**
 * Back from the view to the layer's own layout (what Ablation-CAM feeds the rest of the network): `nchw` is
 * `[N, C, H, W]` in the view, `native` one image's layer tensor, whose dropped prefix tokens are put back.
 */
export function viewBack(view: LayerView, nchw: FloatArray, native: FloatArray): FloatArray {
  if (view.kind === 'nchw') return nchw;
  const [n, c, h, w] = nchw.shape as [number, number, number, number];
  const channelsLast = permute(nchw.data, n, c, h * w);
  if (view.kind === 'nhwc') return { data: channelsLast, shape: [n, h, w, c] };
  const count = native.shape[1] as number;
  const prefix = count - h * w;
  const out = new Float32Array(n * count * c);
  for (let b = 0; b < n; b++) {
    out.set(native.data.subarray(0, prefix * c), b * count * c);
    out.set(channelsLast.subarray(b * h * w * c, (b + 1) * h * w * c), (b * count + prefix) * c);
  }
  return { data: out, shape: [n, count, c] };
}

/** `[n, rows, cols]` -> `[n, cols, rows]`. */
function permute(data: Float32Array, n: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(n * rows * cols);
  for (let b = 0; b < n; b++) {
    const base = b * rows * cols;
    for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[base + k * rows + r] = data[base + r * cols + k] as number;
  }
  return out;
}
