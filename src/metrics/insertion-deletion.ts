import { softmax, topOne } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';
import { type EvalMetric, type Forward, meanColumn } from './metric.js';

export type { Forward } from './metric.js';

/**
 * RISE's blur kernel (`gkern(11, 5)` in Petsiuk et al.'s evaluation.py): scipy's `gaussian_filter` of a centred
 * delta on a `klen x klen` grid, sigma `sigma`, truncated at 4 sigma and reflected at the borders ('reflect'
 * mode), so the kernel is the reflection-folded Gaussian, not a plain normalised one. Row-major `klen x klen`.
 */
export function riseKernel(klen = 11, sigma = 5): Float64Array {
  const radius = Math.floor(4 * sigma + 0.5);
  const taps = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const total = taps.reduce((a, b) => a + b, 0);
  const centre = Math.floor(klen / 2);
  // scipy's 'reflect': d c b a | a b c d | d c b a, period 2 klen.
  const reflect = (n: number) => {
    const m = ((n % (2 * klen)) + 2 * klen) % (2 * klen);
    return m < klen ? m : 2 * klen - 1 - m;
  };
  const line = new Float64Array(klen);
  for (let x = 0; x < klen; x++) {
    for (let k = -radius; k <= radius; k++)
      if (reflect(x + k) === centre) line[x] = (line[x] as number) + (taps[k + radius] as number) / total;
  }
  const kernel = new Float64Array(klen * klen);
  for (let y = 0; y < klen; y++)
    for (let x = 0; x < klen; x++) kernel[y * klen + x] = Math.fround((line[y] as number) * (line[x] as number));
  return kernel;
}

/** Each channel convolved with `kernel` (zero padding klen/2, as `conv2d(x, kern, padding=klen // 2)`). */
export function blurChannels(input: FloatArray, kernel: Float64Array, klen: number): Float32Array {
  const [, channels, height, width] = input.shape as [number, number, number, number];
  const out = new Float32Array(input.data.length);
  const half = Math.floor(klen / 2);
  for (let c = 0; c < channels; c++) {
    const plane = c * height * width;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let sum = 0;
        for (let ky = 0; ky < klen; ky++) {
          const sy = y + ky - half;
          if (sy < 0 || sy >= height) continue;
          for (let kx = 0; kx < klen; kx++) {
            const sx = x + kx - half;
            if (sx >= 0 && sx < width) sum += (kernel[ky * klen + kx] as number) * (input.data[plane + sy * width + sx] as number);
          }
        }
        out[plane + y * width + x] = sum;
      }
    }
  }
  return out;
}

/**
 * Pixels in order of decreasing saliency, as `np.flip(np.argsort(map))`: ties are broken as a stable argsort
 * flipped, the later pixel first (numpy's default quicksort leaves their order unspecified).
 */
export function saliencyOrder(map: ArrayLike<number>): Int32Array {
  const order = Int32Array.from({ length: map.length }, (_, i) => i);
  order.sort((a, b) => (map[b] as number) - (map[a] as number) || b - a);
  return order;
}

/** RISE's normalised area under the curve: the trapezoid rule over equally spaced steps, x from 0 to 1. */
export function riseAuc(scores: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += scores[i] as number;
  return (sum - (scores[0] as number) / 2 - (scores[scores.length - 1] as number) / 2) / (scores.length - 1);
}

export interface CausalOptions {
  /** Pixels changed per step (default hw / 224, rounded: 224 steps at 224 px, as RISE). */
  step?: number;
  /** Images per forward call (default 16). */
  batch?: number;
  /** Class whose probability is followed (default: the model's top-1 on the clean input, as RISE). */
  classIndex?: number;
  /**
   * The pixels' order, most salient first (default: `saliencyOrder(map)`). RISE orders by numpy's default argsort,
   * flipped, whose order among equal values is its quicksort's; give that order to reproduce its curves on a map with ties.
   */
  order?: ArrayLike<number>;
  onProgress?: (done: number, total: number) => void;
}

export interface CausalCurve {
  /** Softmax probability of the class after 0, step, 2 step, ... pixels changed. */
  scores: number[];
  auc: number;
  classIndex: number;
}

/**
 * Deletion and insertion (Petsiuk et al. 2018, RISE's `CausalMetric`): starting from the input (deletion) or
 * from its substrate (insertion), the pixels are changed `step` at a time in order of decreasing saliency to the
 * other image, and the class's softmax probability is followed; the score is the normalised area under that
 * curve (deletion: lower is better; insertion: higher). Deletion's substrate is zero in the normalised input;
 * insertion's is the input blurred by RISE's kernel (11 px, sigma 5). All n + 1 images run as batched passes.
 */
export async function causalMetric(
  forward: Forward,
  input: FloatArray,
  map: ArrayLike<number>,
  mode: 'deletion' | 'insertion',
  options: CausalOptions = {},
): Promise<CausalCurve> {
  const [, channels, height, width] = input.shape as [number, number, number, number];
  const positions = height * width;
  if (map.length !== positions) throw new Error(`the map has ${map.length} values; the input has ${height} x ${width} pixels`);
  const step = options.step ?? Math.max(1, Math.round(positions / 224));
  const batch = options.batch ?? 16;
  const classIndex = options.classIndex ?? topOne((await forward([input]))[0] as Float32Array).index;
  const substrate = mode === 'deletion' ? new Float32Array(input.data.length) : blurChannels(input, riseKernel(11, 5), 11);
  const [start, finish] = mode === 'deletion' ? [input.data, substrate] : [substrate, input.data];
  const order = options.order ?? saliencyOrder(map);
  const steps = Math.ceil(positions / step);
  const current = Float32Array.from(start);
  const scores: number[] = [];
  for (let i = 0; i <= steps; ) {
    const images: FloatArray[] = [];
    for (; images.length < batch && i <= steps; i++) {
      images.push({ data: Float32Array.from(current), shape: input.shape });
      // Then change the next `step` most salient pixels, every channel.
      for (let k = i * step; k < Math.min((i + 1) * step, positions); k++) {
        const p = order[k] as number;
        for (let c = 0; c < channels; c++) current[c * positions + p] = finish[c * positions + p] as number;
      }
    }
    for (const logits of await forward(images)) scores.push(softmax(logits)[classIndex] as number);
    options.onProgress?.(scores.length, steps + 1);
  }
  return { scores, auc: riseAuc(scores), classIndex };
}

/** `insdel`: RISE's deletion and insertion AUCs, with each pair's curve kept for the report's mean curves. */
export const insdelMetric: EvalMetric = {
  name: 'insdel',
  summary: "RISE's deletion and insertion: the class's probability as pixels are deleted or inserted in order of saliency",
  byDefault: true,
  columns: [meanColumn('deletion', 'deletion'), meanColumn('insertion', 'insertion')],
  caption: "deletion / insertion: RISE's AUCs (lower / higher is better)",
  curves: [
    { key: 'deletionCurve', title: 'deletion' },
    { key: 'insertionCurve', title: 'insertion' },
  ],
  async score({ forward, tensor, map, classIndex, annotatedClass }) {
    const round = (values: number[]) => values.map((v) => Math.round(v * 1e4) / 1e4);
    // RISE follows the model's top-1 class on the clean input; annotatedClass follows the explained class.
    const followed = annotatedClass ? { classIndex } : {};
    const deletion = await causalMetric(forward, tensor, map, 'deletion', followed);
    const insertion = await causalMetric(forward, tensor, map, 'insertion', followed);
    return {
      deletion: deletion.auc,
      insertion: insertion.auc,
      deletionCurve: round(deletion.scores),
      insertionCurve: round(insertion.scores),
    };
  },
};
