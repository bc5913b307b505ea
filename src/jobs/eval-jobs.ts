import { resolve } from 'node:path';
import type { Annotation } from '../datasets/voc.js';
import { absoluteModel, type BatchJob, imageHash, jobKey, modelHash, stemOf } from './batch.js';

/** One annotated (image, class) pair to explain with one method and score. */
export interface EvalPair {
  image: string;
  annotation: Annotation;
  className: string;
  method: string;
  /** On a detector: the annotated box's index in its image, and the target that explains it (box:x1,y1,x2,y2:label). */
  box?: number;
  target?: string;
}

export interface EvalPlanOptions {
  model: string;
  weights?: string;
  layer?: string;
  metrics: string[];
  tolerance: number;
  annotatedClass: boolean;
  /** Where the jobs' maps, overlays and records go. */
  outDir: string;
}

/**
 * `cameras eval`'s work as batch jobs: one per pair, keyed by everything its scores depend on (image and model
 * content, layer, method, class, annotation, metrics and their settings), so they run embedded or on BullMQ
 * workers like any batch job, and a rerun finds the finished ones.
 */
export async function planEval(pairs: EvalPair[], options: EvalPlanOptions): Promise<BatchJob[]> {
  const model = absoluteModel(options.model);
  const weights = options.weights ? resolve(options.weights) : undefined;
  const modelKey = await modelHash(model, weights);
  const outDir = resolve(options.outDir);
  const images = new Map<string, string>();
  const jobs: BatchJob[] = [];
  for (const pair of pairs) {
    const image = images.get(pair.image) ?? (await imageHash(pair.image));
    images.set(pair.image, image);
    const evaluate = {
      annotation: pair.annotation,
      className: pair.className,
      metrics: [...options.metrics].sort(),
      tolerance: options.tolerance,
      annotatedClass: options.annotatedClass,
      ...(pair.box !== undefined ? { box: pair.box } : {}),
    };
    const key = jobKey({
      imageHash: image,
      modelHash: modelKey,
      layer: options.layer ?? null,
      method: pair.method,
      class: pair.className,
      target: pair.target ?? 'logit',
      evaluate,
    });
    jobs.push({
      key,
      image: resolve(pair.image),
      imageHash: image,
      model,
      modelHash: modelKey,
      ...(weights ? { weights } : {}),
      ...(options.layer ? { layer: options.layer } : {}),
      method: pair.method,
      // A box's class is its label, in the target.
      ...(pair.target ? { target: pair.target } : { class: pair.className }),
      outDir,
      stem: stemOf(outDir, pair.image, pair.method, key),
      evaluate,
    });
  }
  return jobs;
}
