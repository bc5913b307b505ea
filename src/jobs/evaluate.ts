import type { Annotation } from '../datasets/voc.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import { CamerasError } from '../errors.js';
import type { Explainer } from '../explainer.js';
import type { FloatArray } from '../io/npy.js';
import type { ExplainResult } from '../methods/method.js';
import type { PairScores, ScoredPair } from '../metrics/metric.js';
import { EVAL_METRICS } from '../metrics/names.js';

/** What an evaluation job scores beyond its map: one annotated (image, class) pair, by the chosen metrics. */
export interface EvalSpec {
  annotation: Annotation;
  className: string;
  /** Metric names (see `metrics/names.ts`). */
  metrics: string[];
  /** The pointing game's tolerance in pixels. */
  tolerance: number;
  /** Insertion and deletion follow the annotated class instead of the model's top-1 (RISE's choice). */
  annotatedClass: boolean;
  /** On a detector: which annotated box of the image (its only object in `annotation`). */
  box?: number;
}

/** Refuses a picture whose size is not its annotation's (the boxes would point elsewhere). */
export function checkAnnotatedSize(image: string, picture: { width: number; height: number }, annotation: Annotation): void {
  if (picture.width !== annotation.width || picture.height !== annotation.height)
    throw new CamerasError(
      `${image} is ${picture.width} x ${picture.height} but its annotation says ${annotation.width} x ${annotation.height}; fix the annotation's <size> (or the image's EXIF orientation)`,
    );
}

/** The chosen metrics of one explained pair: `result` is the map of `tensor` for the pair's class. */
export async function scorePair(explainer: Explainer, tensor: FloatArray, result: ExplainResult, spec: EvalSpec): Promise<PairScores> {
  const [, , h, w] = tensor.shape as [number, number, number, number];
  const pair: ScoredPair = {
    forward: (inputs) => explainer.forward(inputs),
    tensor,
    map: result.height === h && result.width === w ? result.map : resizePlaneBilinear(result.map, result.height, result.width, h, w),
    result,
    classIndex: result.classIndex as number,
    annotation: spec.annotation,
    className: spec.className,
    tolerance: spec.tolerance,
    annotatedClass: spec.annotatedClass,
  };
  const scores: PairScores = {};
  // In the registry's order, whatever order they were asked in: records compare equal across runs.
  for (const metric of EVAL_METRICS) if (spec.metrics.includes(metric.name)) Object.assign(scores, await metric.score(pair));
  return scores;
}
