import { CamerasError } from '../errors.js';
import { attentionMaps } from '../onnx/attention.js';
import type { OnnxGraph } from '../onnx/graph.js';
import { forwardBytes, tensorShapesAt } from '../onnx/sizes.js';

/**
 * A run's peak memory, estimated before it starts: a fixed 0.3 GB (runtime, code, small buffers), the model's
 * weights, 0.22 x the bytes of every tensor its forward pass makes at the largest input (ONNX Runtime reuses most of
 * them; the backward pass keeps what it needs), and 80 bytes per pixel of the map (resized inputs, the fused sums,
 * the map and its picture). The constants come from measured peaks: MobileNetV2 at 1024 and 2048 px (0.55 and 1.62
 * GB), InceptionV3 (0.68, 1.04 GB), mini_resnet (0.25, 0.56 GB) and the 6.3 GB MobileNetV2 took at 4096 px; the
 * estimate is 1-2.4x those, conservative by design. A transformer's attention maps (`heads x T x T`, T tokens) are
 * counted apart: the scores, the probabilities and, in the backward pass, their gradient and its temporaries are
 * alive together, so 5 x the largest map (measured: ViT-B/16 at 896 px peaks at 2.8 GB with 0.47 GB maps; the small
 * ViT of the tests at 0.76 GB with 0.16 GB maps). With `attentionOutputs` (rollout, Chefer's method), every block's
 * maps and their gradients, which those methods take out of the runtime, are added.
 */
export function estimatePeakBytes(
  graph: OnnxGraph,
  pass: { channels: number; size: number; mapSize: number; attentionOutputs?: boolean },
): number {
  let weights = 0;
  for (const init of graph.initializers.values()) weights += 4 * (init.dims ?? []).reduce((a: number, b) => a * Number(b), 1);
  const shapes = tensorShapesAt(graph, [1, pass.channels, pass.size, pass.size]);
  const count = (name: string) => shapes.get(name)?.reduce((a, b) => a * b, 1) ?? 0;
  const all = attentionMaps(graph).map(count);
  const maps = new Set(all);
  const largestMap = 4 * Math.max(0, ...maps);
  // Attention methods (rollout, Chefer's) take every block's maps and their gradients out of the runtime at once.
  const taken = pass.attentionOutputs ? 2 * 4 * all.reduce((a, b) => a + b, 0) : 0;
  // The tensors as large as an attention map (scores, masks, probabilities) are in the attention term.
  const forward = forwardBytes(graph, [1, pass.channels, pass.size, pass.size], (elements) => !maps.has(elements), shapes);
  return 0.3e9 + weights + 0.22 * forward + 5 * largestMap + taken + 80 * pass.mapSize * pass.mapSize;
}

/** Refuses a run whose estimated peak is over `budget` bytes, naming both and the fix. */
export function checkMemory(estimate: number, budget: number | undefined, largest: number): void {
  if (budget === undefined || estimate <= budget) return;
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
  throw new CamerasError(
    `a pass at ${largest} px needs about ${gb(estimate)} by our estimate, over the memory budget of ${gb(budget)}; use smaller resolutions or a smaller image, or raise the budget (CAMERAS_MEMORY_BUDGET=<GB>, or 'memoryBudget' in the library)`,
  );
}
