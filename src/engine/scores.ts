import { CamerasError } from '../errors.js';

/**
 * What a map explains: the scalar whose gradient (or score) a method follows, as a function of the logits z
 * of the explained class c.
 * - `'logit'`: z_c (the default, as the paper and pytorch-grad-cam do);
 * - `'prob'`: softmax(z)_c;
 * - `'logprob'`: log softmax(z)_c, minus the cross-entropy toward c (what attacks follow);
 * - `{ contrast: b }`: z_c - z_b, why this class rather than class b;
 * - `{ weights, space }`: sum_k w_k z_k, or sum_k w_k softmax(z)_k with `space: 'probabilities'`; c is then
 *   only reported, not used.
 */
export type Target =
  | 'logit'
  | 'prob'
  | 'logprob'
  | { contrast: number }
  | { weights: ArrayLike<number>; space?: 'logits' | 'probabilities' };

/** Softmax of one row of logits, in float64. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] as number);
  const out = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp((logits[i] as number) - max);
    total += out[i] as number;
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / total;
  return out;
}

/** Softmax probability of class `index` in one row of logits. */
export function probabilityOf(logits: ArrayLike<number>, index: number): number {
  return softmax(logits)[index] as number;
}

/** log softmax(z)_index, computed as z_index - max - log sum exp(z - max) so it stays finite for tiny probabilities. */
export function logProbabilityOf(logits: ArrayLike<number>, index: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] as number);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp((logits[i] as number) - max);
  return (logits[index] as number) - max - Math.log(total);
}

/** Top-1 index and softmax probability of one row of logits. */
export function topOne(logits: ArrayLike<number>): { index: number; probability: number } {
  let index = 0;
  for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[index] as number)) index = i;
  return { index, probability: probabilityOf(logits, index) };
}

/** The k most likely classes, most likely first. */
export function topK(logits: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: logits.length }, (_, i) => i)
    .sort((a, b) => (logits[b] as number) - (logits[a] as number))
    .slice(0, k);
}

export function checkClass(classIndex: number, classCount: number | undefined): void {
  if (!Number.isInteger(classIndex) || classIndex < 0 || (classCount !== undefined && classIndex >= classCount)) {
    const range = classCount !== undefined ? `0-${classCount - 1}` : 'a non-negative integer';
    throw new CamerasError(`class ${classIndex} is out of range: the model has ${classCount ?? 'an unknown number of'} classes (${range})`);
  }
}

/** Refuses a target that names a class out of range or weights of the wrong length. */
export function checkTarget(target: Target | undefined, classIndex: number | null, classCount: number | undefined): void {
  if (target === undefined || target === 'logit' || target === 'prob' || target === 'logprob') return;
  if (typeof target !== 'object')
    throw new CamerasError(`unknown target '${String(target)}'; use logit, prob, logprob or contrast:<class>`);
  if ('contrast' in target) {
    checkClass(target.contrast, classCount);
    if (target.contrast === classIndex)
      throw new CamerasError(`the contrast class ${target.contrast} is the explained class; contrast with another class`);
    return;
  }
  if (classCount !== undefined && target.weights.length !== classCount)
    throw new CamerasError(`the target weights have ${target.weights.length} entries; the model has ${classCount} classes`);
}

/**
 * The seed of one image's backward pass. The gradient graph forms the logits' gradient as
 * `s + topOne * onehot(argmax z)`, taken through the softmax's Jacobian when `softmax` is 1, so a target of
 * the top-1 class needs no extra forward pass.
 */
export interface TargetSeed {
  /** Over the classes: the given class's one-hot, a contrast's -1, or the weights. */
  seed: Float32Array;
  /** 1 where the top-1 class's one-hot is added to the seed (no class given). */
  topOne: number;
  /** 1 where the seed weights the softmax probabilities rather than the logits. */
  softmax: number;
  /** 1 where the seed weights the log-probabilities. */
  logSoftmax: number;
}

export function targetSeed(target: Target | undefined, classIndex: number | null, classes: number): TargetSeed {
  const seed = new Float32Array(classes);
  const chosen = target ?? 'logit';
  if (typeof chosen === 'object' && 'weights' in chosen) {
    if (chosen.weights.length !== classes)
      throw new CamerasError(`the target weights have ${chosen.weights.length} entries; the model has ${classes} classes`);
    seed.set(Array.from(chosen.weights));
    return { seed, topOne: 0, softmax: chosen.space === 'probabilities' ? 1 : 0, logSoftmax: 0 };
  }
  if (classIndex !== null) seed[classIndex] = 1;
  if (typeof chosen === 'object') seed[chosen.contrast] = (seed[chosen.contrast] as number) - 1;
  return { seed, topOne: classIndex === null ? 1 : 0, softmax: chosen === 'prob' ? 1 : 0, logSoftmax: chosen === 'logprob' ? 1 : 0 };
}

/** The target's value on one row of logits for class `classIndex` (what masking methods score). */
export function targetScore(logits: ArrayLike<number>, target: Target | undefined, classIndex: number): number {
  const chosen = target ?? 'logit';
  if (chosen === 'logit') return logits[classIndex] as number;
  if (chosen === 'prob') return probabilityOf(logits, classIndex);
  if (chosen === 'logprob') return logProbabilityOf(logits, classIndex);
  if ('contrast' in chosen) return (logits[classIndex] as number) - (logits[chosen.contrast] as number);
  const values = chosen.space === 'probabilities' ? softmax(logits) : logits;
  let total = 0;
  for (let k = 0; k < values.length; k++) total += (chosen.weights[k] as number) * (values[k] as number);
  return total;
}

/** `logit`, `prob`, `logprob`, `contrast:<class>` (an index, or a label `toIndex` knows) as a target. */
export function parseTarget(text: string, toIndex: (label: string) => number = Number): Target {
  if (text === 'logit' || text === 'prob' || text === 'logprob') return text;
  const match = /^contrast:(.+)$/.exec(text);
  if (match) {
    const other = toIndex(match[1] as string);
    if (!Number.isInteger(other)) throw new CamerasError(`unknown contrast class '${match[1]}'; give an index or a label`);
    return { contrast: other };
  }
  throw new CamerasError(`unknown target '${text}'; use logit, prob, logprob or contrast:<class>`);
}

/** A short name of a target for reports: logit, prob, contrast:3, weights. */
export function targetName(target: Target | undefined): string {
  const chosen = target ?? 'logit';
  if (typeof chosen === 'string') return chosen;
  return 'contrast' in chosen ? `contrast:${chosen.contrast}` : `weights(${chosen.space ?? 'logits'})`;
}
