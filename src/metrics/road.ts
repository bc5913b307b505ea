import { type Target, targetScore } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';
import { gaussian } from '../random.js';
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
 * conjugate gradients (to 1e-10, where the reference calls spsolve); then `noise` x N(0, 1) is added to them.
 */
export function noisyLinearImpute(input: FloatArray, keep: Uint8Array, noise = 0.01, random: () => number = () => 0): Float32Array {
  const [, channels, height, width] = input.shape as [number, number, number, number];
  const positions = height * width;
  const removed: number[] = [];
  const index = new Int32Array(positions).fill(-1);
  for (let p = 0; p < positions; p++) if (!keep[p]) index[p] = removed.push(p) - 1;
  const n = removed.length;
  const out = Float32Array.from(input.data);
  if (n === 0) return out;
  // The system M v = r with M = diag(sum of in-image weights) - W(removed neighbours): symmetric positive definite
  // wherever a removed region touches a kept pixel.
  const diagonal = new Float64Array(n);
  const links: { to: number; weight: number }[][] = Array.from({ length: n }, () => []);
  const keptLinks: { at: number; weight: number }[][] = Array.from({ length: n }, () => []);
  removed.forEach((p, i) => {
    const y = Math.floor(p / width);
    const x = p % width;
    for (const [dy, dx, w] of NEIGHBOURS) {
      const ny = y + dy;
      const nx = x + dx;
      if (ny < 0 || nx < 0 || ny >= height || nx >= width) continue;
      diagonal[i] = (diagonal[i] as number) + w;
      const q = ny * width + nx;
      if (keep[q]) keptLinks[i]?.push({ at: q, weight: w });
      else links[i]?.push({ to: index[q] as number, weight: w });
    }
  });
  const apply = (v: Float64Array, into: Float64Array) => {
    for (let i = 0; i < n; i++) {
      let s = (diagonal[i] as number) * (v[i] as number);
      for (const { to, weight } of links[i] as { to: number; weight: number }[]) s -= weight * (v[to] as number);
      into[i] = s;
    }
  };
  for (let c = 0; c < channels; c++) {
    const plane = c * positions;
    const rhs = new Float64Array(n);
    for (let i = 0; i < n; i++)
      for (const { at, weight } of keptLinks[i] as { at: number; weight: number }[])
        rhs[i] = (rhs[i] as number) + weight * (input.data[plane + at] as number);
    const v = conjugateGradient(apply, rhs, n);
    removed.forEach((p, i) => {
      out[plane + p] = (v[i] as number) + noise * random();
    });
  }
  return out;
}

function conjugateGradient(apply: (v: Float64Array, into: Float64Array) => void, b: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n);
  const r = Float64Array.from(b);
  const p = Float64Array.from(b);
  const q = new Float64Array(n);
  let rr = r.reduce((s, v) => s + v * v, 0);
  const stop = 1e-20 * Math.max(rr, 1e-30);
  for (let k = 0; k < 10 * n && rr > stop; k++) {
    apply(p, q);
    let pq = 0;
    for (let i = 0; i < n; i++) pq += (p[i] as number) * (q[i] as number);
    if (pq <= 0) break;
    const alpha = rr / pq;
    let next = 0;
    for (let i = 0; i < n; i++) {
      x[i] = (x[i] as number) + alpha * (p[i] as number);
      r[i] = (r[i] as number) - alpha * (q[i] as number);
      next += (r[i] as number) * (r[i] as number);
    }
    const beta = next / rr;
    rr = next;
    for (let i = 0; i < n; i++) p[i] = (r[i] as number) + beta * (p[i] as number);
  }
  return x;
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
