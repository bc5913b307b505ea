import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';

/**
 * A region of a dense output `[1, K, H, W]` (a segmenter's class scores): the sum of class `segment`'s scores over
 * a mask, as pytorch-grad-cam's `SemanticSegmentationTarget` computes `(output[k] * mask).sum()`. Without `mask`
 * the mask is the pixels predicted as that class (argmax over K); a given mask (non-zero inside, any size) is
 * resized to the output's size at each scale (nearest, as PyTorch's default `interpolate`).
 */
export interface RegionTarget {
  segment: number;
  mask?: RegionMask;
}

/** A mask over an image or an output, row-major; non-zero values are inside. */
export interface RegionMask {
  data: ArrayLike<number>;
  width: number;
  height: number;
}

/**
 * Any scalar of the explained output, for the library: `score` gives its value (what masking methods compare),
 * `gradient` its gradient with respect to the output (the seed of the backward pass, the output's shape). Gradient
 * methods need `gradient`; they run a forward pass first to have the output, so such a target costs one more pass.
 */
export interface OutputTarget {
  /** Shown as the result's `target` (default 'custom'). */
  name?: string;
  /** `input`: the size of the pass's input where it is known (a multi-scale method's scales differ). */
  score(output: FloatArray, input?: InputSize): number;
  gradient?(output: FloatArray, input?: InputSize): Float32Array;
}

/** An input image's size in pixels. */
export interface InputSize {
  width: number;
  height: number;
}

/**
 * What a map explains: the scalar whose gradient (or score) a method follows. A target is a seed over the explained
 * output's whole shape. On a classifier's logits z, for the explained class c:
 * - `'logit'`: z_c (the default, as the paper and pytorch-grad-cam do);
 * - `'prob'`: softmax(z)_c;
 * - `'logprob'`: log softmax(z)_c, minus the cross-entropy toward c (what attacks follow);
 * - `{ contrast: b }`: z_c - z_b, why this class rather than class b;
 * - `{ weights, space }`: sum_k w_k z_k, or sum_k w_k softmax(z)_k with `space: 'probabilities'`; c is then
 *   only reported, not used.
 * On a dense `[1, K, H, W]` output: `{ segment: k, mask? }` (see `RegionTarget`). On any output: an `OutputTarget`.
 */
export type Target =
  | 'logit'
  | 'prob'
  | 'logprob'
  | { contrast: number }
  | { weights: ArrayLike<number>; space?: 'logits' | 'probabilities' }
  | RegionTarget
  | OutputTarget;

/** The targets that weight a classifier's logits (everything but regions and functions). */
export type ClassifierTarget = Exclude<Target, RegionTarget | OutputTarget>;

export function isRegionTarget(target: Target | undefined): target is RegionTarget {
  return typeof target === 'object' && 'segment' in target;
}

export function isOutputTarget(target: Target | undefined): target is OutputTarget {
  return typeof target === 'object' && 'score' in target && typeof target.score === 'function';
}

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

/** Refuses a target that names a class out of range, weights of the wrong length, or a malformed mask. */
export function checkTarget(target: Target | undefined, classIndex: number | null, classCount: number | undefined): void {
  if (target === undefined || target === 'logit' || target === 'prob' || target === 'logprob') return;
  if (typeof target !== 'object' || target === null)
    throw new CamerasError(`unknown target '${String(target)}'; use logit, prob, logprob, contrast:<class> or segment:<class>`);
  if (isOutputTarget(target)) return;
  if (isRegionTarget(target)) {
    checkClass(target.segment, classCount);
    const mask = target.mask;
    if (mask && !(Number.isInteger(mask.width) && Number.isInteger(mask.height) && mask.width > 0 && mask.height > 0))
      throw new CamerasError(`the region's mask is ${mask.width} x ${mask.height}; give a mask of at least 1 x 1 pixels`);
    if (mask && mask.data.length !== mask.width * mask.height)
      throw new CamerasError(`the region's mask has ${mask.data.length} values for ${mask.width} x ${mask.height} pixels`);
    return;
  }
  if ('contrast' in target) {
    checkClass(target.contrast, classCount);
    if (target.contrast === classIndex)
      throw new CamerasError(`the contrast class ${target.contrast} is the explained class; contrast with another class`);
    return;
  }
  if (!('weights' in target))
    throw new CamerasError('unknown target object; use { contrast }, { weights }, { segment } or { score, gradient }');
  if (classCount !== undefined && target.weights.length !== classCount)
    throw new CamerasError(`the target weights have ${target.weights.length} entries; the model has ${classCount} classes`);
}

/**
 * The seed of one image's backward pass on a classifier's logits. The gradient graph forms the logits' gradient as
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

export function targetSeed(target: ClassifierTarget | undefined, classIndex: number | null, classes: number): TargetSeed {
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

/** A mask resized to `height x width` as PyTorch's default `interpolate` (nearest: the floor of the scaled position). */
export function resizeMaskNearest(mask: RegionMask, height: number, width: number): Float32Array {
  const out = new Float32Array(height * width);
  for (let y = 0; y < height; y++) {
    const from = Math.min(mask.height - 1, Math.floor((y * mask.height) / height));
    for (let x = 0; x < width; x++) {
      const source = Math.min(mask.width - 1, Math.floor((x * mask.width) / width));
      out[y * width + x] = (mask.data[from * mask.width + source] as number) !== 0 ? 1 : 0;
    }
  }
  return out;
}

/** The pixels of one image's `[1, K, H, W]` output predicted as class `k` (first maximum over K), as 0/1. */
export function predictedMask(output: FloatArray, k: number): Float32Array {
  const [, classes, height, width] = output.shape as [number, number, number, number];
  const positions = height * width;
  const mask = new Float32Array(positions);
  for (let p = 0; p < positions; p++) {
    let best = 0;
    for (let c = 1; c < classes; c++)
      if ((output.data[c * positions + p] as number) > (output.data[best * positions + p] as number)) best = c;
    mask[p] = best === k ? 1 : 0;
  }
  return mask;
}

/** The region's mask at one image's `[1, K, H, W]` output: given and resized, or predicted. */
export function regionMaskAt(target: RegionTarget, output: FloatArray): Float32Array {
  const [, , height, width] = output.shape as [number, number, number, number];
  return target.mask ? resizeMaskNearest(target.mask, height, width) : predictedMask(output, target.segment);
}

/**
 * A region whose mask is its prediction on `output` (one image's clean `[1, K, H, W]`), frozen: what perturbation
 * methods score every perturbed copy against, as pytorch-grad-cam's target holds the clean image's mask. Other
 * targets, and a region with its own mask, are returned as they are.
 */
export function frozenRegion<T extends Target | undefined>(target: T, output: FloatArray): T | RegionTarget {
  if (!isRegionTarget(target) || target.mask) return target;
  const [, , height, width] = output.shape as [number, number, number, number];
  return { segment: target.segment, mask: { data: predictedMask(output, target.segment), width, height } };
}

/**
 * The target's value on one image's output (what masking methods score): a row of logits for the classifier
 * targets, with `classIndex` the explained class; the `[1, K, H, W]` output for a region; any output for a function.
 */
export function targetScore(output: ArrayLike<number> | FloatArray, target: Target | undefined, classIndex: number): number {
  const whole: FloatArray | undefined = 'shape' in output ? (output as FloatArray) : undefined;
  const values: ArrayLike<number> = whole ? whole.data : (output as ArrayLike<number>);
  if (isOutputTarget(target)) return target.score(whole ?? { data: Float32Array.from(values), shape: [1, values.length] });
  if (isRegionTarget(target)) {
    if (whole?.shape.length !== 4) throw new CamerasError('a region target scores a dense [1, K, H, W] output; this one is not');
    const [, , height, width] = whole.shape as [number, number, number, number];
    const positions = height * width;
    const mask = regionMaskAt(target, whole);
    let total = 0;
    for (let p = 0; p < positions; p++) total += (values[target.segment * positions + p] as number) * (mask[p] as number);
    return total;
  }
  const chosen = target ?? 'logit';
  if (chosen === 'logit') return values[classIndex] as number;
  if (chosen === 'prob') return probabilityOf(values, classIndex);
  if (chosen === 'logprob') return logProbabilityOf(values, classIndex);
  if ('contrast' in chosen) return (values[classIndex] as number) - (values[chosen.contrast] as number);
  const weighted = chosen.space === 'probabilities' ? softmax(values) : values;
  let total = 0;
  for (let k = 0; k < weighted.length; k++) total += (chosen.weights[k] as number) * (weighted[k] as number);
  return total;
}

/** `logit`, `prob`, `logprob`, `contrast:<class>`, `segment:<class>` (a class by index, or a label `toIndex` knows) as a target. */
export function parseTarget(text: string, toIndex: (label: string) => number = Number): Target {
  if (text === 'logit' || text === 'prob' || text === 'logprob') return text;
  const match = /^(contrast|segment):(.+)$/.exec(text);
  if (match) {
    const other = toIndex(match[2] as string);
    if (!Number.isInteger(other)) throw new CamerasError(`unknown ${match[1]} class '${match[2]}'; give an index or a label`);
    return match[1] === 'contrast' ? { contrast: other } : { segment: other };
  }
  throw new CamerasError(`unknown target '${text}'; use logit, prob, logprob, contrast:<class> or segment:<class>[:<mask.png>]`);
}

/** A short name of a target for reports: logit, prob, contrast:3, weights(logits), segment:3, segment:3:mask, custom. */
export function targetName(target: Target | undefined): string {
  const chosen = target ?? 'logit';
  if (typeof chosen === 'string') return chosen;
  if (isOutputTarget(chosen)) return chosen.name ?? 'custom';
  if (isRegionTarget(chosen)) return `segment:${chosen.segment}${chosen.mask ? ':mask' : ''}`;
  return 'contrast' in chosen ? `contrast:${chosen.contrast}` : `weights(${chosen.space ?? 'logits'})`;
}
