import { type Target, targetScore } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';
import { type EvalMetric, type Forward, meanColumn } from './metric.js';

/**
 * pytorch-grad-cam's `CamMultImageConfidenceChange`: score(x * map) - score(x), the map in [0, 1] at the input's
 * size multiplying every channel; the score is the target on the logits (default here: the class's softmax
 * probability, as its `ClassifierOutputSoftmaxTarget`). Positive: the map alone keeps or raises the confidence.
 */
export async function confidenceChange(
  forward: Forward,
  input: FloatArray,
  map: ArrayLike<number>,
  classIndex: number,
  target: Target = 'prob',
): Promise<number> {
  const positions = map.length;
  const [, channels] = input.shape as [number, number];
  if (positions * channels !== input.data.length)
    throw new Error(`the map has ${positions} values; the input has ${input.data.length / channels} pixels`);
  const masked = Float32Array.from(input.data, (v, i) => v * (map[i % positions] as number));
  const [plain, kept] = await forward([input, { data: masked, shape: input.shape }]);
  return targetScore(kept as Float32Array, target, classIndex) - targetScore(plain as Float32Array, target, classIndex);
}

/** `confidence`: pytorch-grad-cam's confidence change of the explained class's probability. */
export const confidenceMetric: EvalMetric = {
  name: 'confidence',
  summary: "pytorch-grad-cam's confidence change: the class's probability on the input times the map, minus on the input",
  byDefault: false,
  columns: [meanColumn('confidence', 'confidence')],
  caption: "confidence: pytorch-grad-cam's confidence change (higher is better)",
  score: async ({ forward, tensor, map, classIndex }) => ({ confidence: await confidenceChange(forward, tensor, map, classIndex, 'prob') }),
};
