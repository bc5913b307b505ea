import { softmax } from '../engine/scores.js';
import { type EvalMetric, meanColumn } from './metric.js';

/**
 * The paper's density metrics (Jalwana et al. 2021, section 5): how much of the class's confidence the salient
 * region carries per unit of area.
 * rho+ = P_c(I * Psi) / (sum Psi / hw), higher is better;
 * rho- = P_c(I * (1 - Psi)) / (sum (1 - Psi) / hw), lower is better;
 * Psi the map at the input's size in [0, 1], I the normalised input, P_c the class's softmax probability.
 */
export interface Densities {
  positive: number;
  negative: number;
}

/** The input times a map (and its complement), channel by channel: the two images the densities score. */
export function maskedInputs(input: Float32Array, channels: number, map: ArrayLike<number>): { kept: Float32Array; removed: Float32Array } {
  const positions = map.length;
  if (positions * channels !== input.length)
    throw new Error(`the map has ${positions} values; the input has ${input.length / channels} pixels`);
  const kept = new Float32Array(input.length);
  const removed = new Float32Array(input.length);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < positions; p++) {
      const v = input[c * positions + p] as number;
      const m = map[p] as number;
      kept[c * positions + p] = v * m;
      removed[c * positions + p] = v * (1 - m);
    }
  }
  return { kept, removed };
}

/** rho+ and rho- from the two probabilities and the map; an area of zero gives 0 (nothing kept, nothing scored). */
export function densities(probabilityKept: number, probabilityRemoved: number, map: ArrayLike<number>): Densities {
  let sum = 0;
  for (let p = 0; p < map.length; p++) sum += map[p] as number;
  const area = sum / map.length;
  return {
    positive: area > 0 ? probabilityKept / area : 0,
    negative: area < 1 ? probabilityRemoved / (1 - area) : 0,
  };
}

/** `density`: the paper's rho+ and rho- of the pair's map. */
export const densityMetric: EvalMetric = {
  name: 'density',
  summary: "the paper's densities: the class's probability on the input times the map (rho+) and its complement (rho-), per unit of area",
  byDefault: true,
  columns: [meanColumn('rhoPlus', 'rho+'), meanColumn('rhoMinus', 'rho-')],
  caption: "rho+ / rho-: the CAMERAS paper's densities (higher / lower is better)",
  async score({ forward, tensor, map, classIndex }) {
    const { kept, removed } = maskedInputs(tensor.data, tensor.shape[1] as number, map);
    const [a, b] = await forward([
      { data: kept, shape: tensor.shape },
      { data: removed, shape: tensor.shape },
    ]);
    const d = densities(softmax(a as Float32Array)[classIndex] as number, softmax(b as Float32Array)[classIndex] as number, map);
    return { rhoPlus: d.positive, rhoMinus: d.negative };
  },
};
