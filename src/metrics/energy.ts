import { classMask } from '../datasets/mask.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import { type EvalMetric, meanColumn } from './metric.js';

/**
 * The share of a map's mass inside a region: sum over the region's pixels / sum over all pixels, the map (in [0, 1])
 * at the region's size; 0 for an all-zero map.
 */
export function energyInside(map: ArrayLike<number>, region: ArrayLike<number>): number {
  let inside = 0;
  let total = 0;
  for (let p = 0; p < map.length; p++) {
    const v = map[p] as number;
    total += v;
    if (region[p]) inside += v;
  }
  return total > 0 ? inside / total : 0;
}

/**
 * `energy`: the energy-based pointing game of Score-CAM (Wang et al., CVPR-W 2020): how much of the map lies on the
 * class's ground truth (its boxes, polygons or masks; on a detector, the one box explained), the map resized to the
 * image (bilinear).
 */
export const energyMetric: EvalMetric = {
  name: 'energy',
  summary: "Score-CAM's energy-based pointing game: the share of the map's sum inside the ground truth",
  byDefault: false,
  columns: [meanColumn('energy', 'energy in box')],
  caption: "Energy: the mean share of the map's sum inside the ground truth (Score-CAM's energy-based pointing game)",
  async score({ annotation, className, result }) {
    const mask = classMask(annotation, className);
    if (!mask) return {};
    const map =
      result.height === annotation.height && result.width === annotation.width
        ? result.map
        : resizePlaneBilinear(Float32Array.from(result.map), result.height, result.width, annotation.height, annotation.width);
    return { energy: energyInside(map, mask.data) };
  },
};
