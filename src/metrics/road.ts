import { type Target, targetScore } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';
import { gaussian } from '../random.js';
import { cellOf, gridLevel, STENCIL_DIRECTIONS, solveStencil } from './grid-solver.js';
import { type EvalMetric, type Forward, meanColumn } from './metric.js';

/** numpy.percentile's default (linear interpolation between the closest ranks). */
export function percentile(values: ArrayLike<number>, p: number): number {
  const sorted = Float64Array.from(values).sort();
  const at = (p / 100) * (sorted.length - 1);
  const low = Math.floor(at);
  const high = Math.min(low + 1, sorted.length - 1);
  return (sorted[low] as number) + (at - low) * ((sorted[high] as number) - (sorted[low] as number));
}

/** ROAD's neighbourhood: direct neighbours weigh 1/6, diagonal ones 1/12. */
const NEIGHBOURS: [number, number, number][] = [
  [1, 1, 1 / 12],
  [0, 1, 1 / 6],
  [-1, 1, 1 / 12],
  [1, -1, 1 / 12],
  [0, -1, 1 / 6],
  [-1, -1, 1 / 12],
  [1, 0, 1 / 6],
  [-1, 0, 1 / 6],
];

/**
 * ROAD's noisy linear imputation (Rong et al. 2022; pytorch-grad-cam's `NoisyLinearImputer`): every removed pixel
 * (keep = 0) takes the weighted mean of its in-image neighbours, kept or themselves imputed, so
 * sum_n w_n v_i - sum_{removed n} w_n v_n = sum_{kept n} w_n x_n, one sparse system per channel, solved here by
 * multigrid-preconditioned conjugate gradients (`solveStencil`, to a relative residual of 1e-10, where the reference
 * calls spsolve); then `noise` x N(0, 1) is added to them.
 */
export function noisyLinearImpute(input: FloatArray, keep: Uint8Array, noise = 0.01, random: () => number = () => 0): Float32Array {
  const [, channels, height, width] = input.shape as [number, number, number, number];
  const positions = height * width;
  const out = Float32Array.from(input.data);
  if (keep.every((k) => k)) return out;
  // The system's weights by direction, in the solver's order: 1/6 to direct neighbours, 1/12 to diagonal ones.
  const weights = STENCIL_DIRECTIONS.map(([dy, dx]) => NEIGHBOURS.find(([ny, nx]) => ny === dy && nx === dx)?.[2] as number);
  const level = gridLevel(height, width, keep, weights);
  // The right-hand sides, every channel at once: the kept neighbours' weighted values.
  const rhs = new Float64Array((height + 2) * (width + 2) * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      if (keep[y * width + x]) continue;
      const at = cellOf(y, x, width) * channels;
      for (const [k, [dy, dx]] of STENCIL_DIRECTIONS.entries()) {
        const ny = y + dy;
        const nx = x + dx;
        if (ny < 0 || nx < 0 || ny >= height || nx >= width || !keep[ny * width + nx]) continue;
        for (let c = 0; c < channels; c++)
          rhs[at + c] = (rhs[at + c] as number) + (weights[k] as number) * (input.data[c * positions + ny * width + nx] as number);
      }
    }
  const { x: solved } = solveStencil(level, rhs, channels);
  // The noise is drawn channel by channel, pixel by pixel (the order ROAD's seeded runs have always used).
  for (let c = 0; c < channels; c++)
    for (let p = 0; p < positions; p++)
      if (!keep[p])
        out[c * positions + p] = (solved[cellOf(Math.floor(p / width), p % width, width) * channels + c] as number) + noise * random();
  return out;
}

export interface RoadOptions {
  /** Percentiles of the map averaged over (default 10, 20, ..., 90, as pytorch-grad-cam's ROAD averagers). */
  percentiles?: number[];
  /** Noise added to imputed pixels (default 0.01) and its seeded generator of N(0, 1) values. */
  noise?: number;
  random?: () => number;
  target?: Target;
}

/**
 * ROAD as pytorch-grad-cam's `ROADMostRelevantFirstAverage`, `...LeastRelevantFirstAverage` and `ROADCombined`
 * compute it: at each percentile p, MoRF imputes the pixels whose map value is at least the p-th percentile (keeps
 * map < threshold), LeRF those of 1 - map; the score is target(imputed) - target(input), averaged over the
 * percentiles; combined = (LeRF - MoRF) / 2 (higher is better).
 */
export async function road(
  forward: Forward,
  input: FloatArray,
  map: ArrayLike<number>,
  classIndex: number,
  options: RoadOptions = {},
): Promise<{ mostRelevantFirst: number; leastRelevantFirst: number; combined: number }> {
  const percentiles = options.percentiles ?? [10, 20, 30, 40, 50, 60, 70, 80, 90];
  const target = options.target ?? 'prob';
  const images: FloatArray[] = [];
  for (const order of ['morf', 'lerf'] as const) {
    const values = order === 'morf' ? Array.from(map) : Array.from(map, (v) => 1 - v);
    for (const p of percentiles) {
      const threshold = percentile(values, p);
      const keep = Uint8Array.from(values, (v) => (v < threshold ? 1 : 0));
      images.push({ data: noisyLinearImpute(input, keep, options.noise ?? 0.01, options.random), shape: input.shape });
    }
  }
  const [plain, ...after] = await forward([input, ...images]);
  const base = targetScore(plain as Float32Array, target, classIndex);
  const mean = (from: number) =>
    after.slice(from, from + percentiles.length).reduce((s, logits) => s + targetScore(logits, target, classIndex) - base, 0) /
    percentiles.length;
  const mostRelevantFirst = mean(0);
  const leastRelevantFirst = mean(percentiles.length);
  return { mostRelevantFirst, leastRelevantFirst, combined: (leastRelevantFirst - mostRelevantFirst) / 2 };
}

/** `road`: ROAD combined, (LeRF - MoRF) / 2 over percentiles 10..90, its noise seeded per pair. */
export const roadMetric: EvalMetric = {
  name: 'road',
  summary: 'ROAD as pytorch-grad-cam computes it: (LeRF - MoRF) / 2 with noisy linear imputation, percentiles 10..90',
  byDefault: false,
  columns: [meanColumn('road', 'road')],
  caption: "road: ROAD's combined score (higher is better)",
  score: async ({ forward, tensor, map, classIndex }) => ({
    road: (await road(forward, tensor, map, classIndex, { random: gaussian(0) })).combined,
  }),
};
