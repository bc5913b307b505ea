import { type OnnxGraph, tensorDims } from './graph.js';
import { patchGrid } from './patch.js';

/** A learnt position embedding found in a graph: the initializer, its prefix tokens and its square grid. */
export interface PositionEmbedding {
  name: string;
  /** Class (and distillation) tokens before the patch tokens. */
  prefix: number;
  /** The side of the square grid of patches it was learnt for. */
  grid: number;
  channels: number;
}

/**
 * The learnt position embeddings of a ViT-style graph: `[1, prefix + g * g, C]` initializers added to a token
 * sequence, in a graph with a patch embedding. Such a model runs only at the grid it was trained at.
 */
export function positionEmbeddings(graph: OnnxGraph): PositionEmbedding[] {
  if (!patchGrid(graph)) return [];
  const found: PositionEmbedding[] = [];
  for (const node of graph.nodes) {
    if (node.opType !== 'Add') continue;
    for (const name of node.input ?? []) {
      const init = graph.initializers.get(name);
      if (!init) continue;
      const dims = tensorDims(init);
      if (dims.length !== 3 || dims[0] !== 1) continue;
      const [, count, channels] = dims as [number, number, number];
      for (const prefix of [1, 0, 2]) {
        const grid = Math.round(Math.sqrt(count - prefix));
        if (grid >= 2 && grid * grid === count - prefix) {
          found.push({ name, prefix, grid, channels });
          break;
        }
      }
    }
  }
  return found;
}

/**
 * How a position embedding is resampled: `torchvision`'s `interpolate_embeddings` (bicubic, a = -0.75,
 * `align_corners=True`), or timm's `resample_abs_pos_embed` (`F.interpolate(bicubic, antialias=True)`: for a larger
 * grid that is the antialiasing filter at scale 1, a = -0.5, half-pixel, taps outside the grid dropped and the rest
 * renormalised, which ONNX's Resize computes with `exclude_outside`; for a smaller grid timm widens the filter, which
 * this Resize does not, so such sizes are refused).
 */
export type PositionResample = 'torchvision' | 'timm';

const RESAMPLING: Record<PositionResample, Record<string, string | number | { float: number }>> = {
  torchvision: { mode: 'cubic', coordinate_transformation_mode: 'align_corners', cubic_coeff_a: { float: -0.75 } },
  timm: { mode: 'cubic', coordinate_transformation_mode: 'half_pixel', cubic_coeff_a: { float: -0.5 }, exclude_outside: 1 },
};

/**
 * Lets a ViT run at any input size: every learnt position embedding is resampled in the graph to the patch grid of
 * the input at hand, the prefix tokens kept, by `convention` (`PositionResample`): as torchvision's
 * `interpolate_embeddings` does when a ViT is fine-tuned at another size (default: bicubic, a = -0.75,
 * `align_corners=True`), or as timm's `resample_abs_pos_embed`. The
 * sizes come from the patch embedding's output shape at run time, so one graph serves every scale and the weights
 * are not copied. At the trained size the resampling is the identity. Returns the embeddings rewritten.
 */
export function resamplePositionEmbeddings(graph: OnnxGraph, convention: PositionResample = 'torchvision'): PositionEmbedding[] {
  const grid = patchGrid(graph);
  const embeddings = positionEmbeddings(graph);
  if (!grid || embeddings.length === 0) return [];
  const op = (type: string, inputs: string[], attributes: Record<string, number | number[] | string | { float: number }> = {}) =>
    graph.addNode(type, inputs, attributes, { name: `cameras_positions/${type}` })[0] as string;
  const int64 = (values: number[]) => graph.addConstant('cameras_positions/const', values, [values.length], 'int64');
  // The patch grid of the input at hand: dims 2 and 3 of the patch embedding's [N, C, h, w].
  const hw = op('Slice', [op('Shape', [grid.tensor]), int64([2]), int64([4])]);
  const rewritten = new Map<string, string>();
  const appendedFrom = graph.nodes.length;
  for (const e of embeddings) {
    const { name, prefix, channels } = e;
    const patches = op('Slice', [name, int64([prefix]), int64([prefix + e.grid * e.grid]), int64([1])]);
    const square = op('Transpose', [op('Reshape', [patches, int64([1, e.grid, e.grid, channels])])], { perm: [0, 3, 1, 2] });
    const sizes = op('Concat', [int64([1, channels]), hw], { axis: 0 });
    const resized = graph.addNode('Resize', [square, '', '', sizes], RESAMPLING[convention], {
      name: 'cameras_positions/Resize',
    })[0] as string;
    const tokens = op('Transpose', [op('Reshape', [resized, int64([1, channels, -1])])], { perm: [0, 2, 1] });
    const all = prefix > 0 ? op('Concat', [op('Slice', [name, int64([0]), int64([prefix]), int64([1])]), tokens], { axis: 1 }) : tokens;
    rewritten.set(name, all);
  }
  // The new nodes, appended, go right after the patch embedding they read; each Add then reads its resampled embedding.
  const nodes = [...graph.nodes];
  const added = nodes.splice(appendedFrom);
  const at = nodes.findIndex((node) => node.output?.includes(grid.tensor)) + 1;
  nodes.splice(at, 0, ...added);
  for (const node of nodes.slice(at + added.length))
    if (node.opType === 'Add') node.input = (node.input ?? []).map((input) => rewritten.get(input) ?? input);
  graph.replaceNodes(nodes);
  return embeddings;
}
