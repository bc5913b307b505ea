import { classMask, isDifficultPair } from '../datasets/mask.js';
import type { Annotation } from '../datasets/voc.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import { softmax } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import type { ExplainResult } from '../methods/method.js';
import { confidenceChange } from '../metrics/confidence-change.js';
import { densities, maskedInputs } from '../metrics/density.js';
import { causalMetric } from '../metrics/insertion-deletion.js';
import type { Metric } from '../metrics/names.js';
import { pointingHit, pointOf } from '../metrics/pointing-game.js';
import { road } from '../metrics/road.js';
import { gaussian } from '../random.js';
import type { LoadedModel } from './loaded-model.js';

/** What an evaluation job scores beyond its map: one annotated (image, class) pair, by the chosen metrics. */
export interface EvalSpec {
  annotation: Annotation;
  className: string;
  metrics: Metric[];
  /** The pointing game's tolerance in pixels. */
  tolerance: number;
  /** Insertion and deletion follow the annotated class instead of the model's top-1 (RISE's choice). */
  annotatedClass: boolean;
}

/** One pair's scores; a metric not asked for is absent. */
export interface EvalScores {
  pointing?: 1 | 0 | -1;
  /** In the pointing game's 'difficult' subset (class region < 1/4 of the image, another class present). */
  difficult?: boolean;
  rhoPlus?: number;
  rhoMinus?: number;
  /** pytorch-grad-cam's confidence change: P(x * map) - P(x) for the explained class. */
  confidence?: number;
  /** ROAD combined, (LeRF - MoRF) / 2 over percentiles 10..90, noise seeded per record. */
  road?: number;
  deletion?: number;
  insertion?: number;
  /** The probability after each step (4 decimals), for the mean curves of the report. */
  deletionCurve?: number[];
  insertionCurve?: number[];
}

/** Refuses a picture whose size is not its annotation's (the boxes would point elsewhere). */
export function checkAnnotatedSize(image: string, picture: { width: number; height: number }, annotation: Annotation): void {
  if (picture.width !== annotation.width || picture.height !== annotation.height)
    throw new CamerasError(
      `${image} is ${picture.width} x ${picture.height} but its annotation says ${annotation.width} x ${annotation.height}; fix the annotation's <size> (or the image's EXIF orientation)`,
    );
}

/** The chosen metrics of one explained pair: `result` is the map of `tensor` for the pair's class. */
export async function scorePair(model: LoadedModel, tensor: FloatArray, result: ExplainResult, spec: EvalSpec): Promise<EvalScores> {
  const metrics = new Set(spec.metrics);
  const cls = result.classIndex;
  const scores: EvalScores = {};
  const { width, height } = spec.annotation;
  if (metrics.has('pointing')) {
    const mask = classMask(spec.annotation, spec.className);
    scores.pointing = mask ? pointingHit(mask, pointOf(result.map, result.height, result.width, height, width), spec.tolerance) : 0;
    scores.difficult = mask ? isDifficultPair(spec.annotation, spec.className, mask) : false;
  }
  const [, , h, w] = tensor.shape as [number, number, number, number];
  const map = result.height === h && result.width === w ? result.map : resizePlaneBilinear(result.map, result.height, result.width, h, w);
  const forward = (inputs: FloatArray[]) => model.explainer.forward(inputs);
  if (metrics.has('density')) {
    const { kept, removed } = maskedInputs(tensor.data, tensor.shape[1] as number, map);
    const [a, b] = await forward([
      { data: kept, shape: tensor.shape },
      { data: removed, shape: tensor.shape },
    ]);
    const d = densities(softmax(a as Float32Array)[cls] as number, softmax(b as Float32Array)[cls] as number, map);
    scores.rhoPlus = d.positive;
    scores.rhoMinus = d.negative;
  }
  if (metrics.has('road')) scores.road = (await road(forward, tensor, map, cls, { random: gaussian(0) })).combined;
  if (metrics.has('confidence')) scores.confidence = await confidenceChange(forward, tensor, map, cls, 'prob');
  if (metrics.has('insdel')) {
    const round = (values: number[]) => values.map((v) => Math.round(v * 1e4) / 1e4);
    // RISE follows the model's top-1 class on the clean input; annotatedClass follows the explained class.
    const followed = spec.annotatedClass ? { classIndex: cls } : {};
    const deletion = await causalMetric(forward, tensor, map, 'deletion', followed);
    const insertion = await causalMetric(forward, tensor, map, 'insertion', followed);
    Object.assign(scores, {
      deletion: deletion.auc,
      insertion: insertion.auc,
      deletionCurve: round(deletion.scores),
      insertionCurve: round(insertion.scores),
    });
  }
  return scores;
}
