import { resizeInput } from '../engine/resize.js';
import { frozenRegion, isOutputTarget, isRegionTarget, probabilityOf, topOne } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { gaussian } from '../random.js';
import { type CommonOptions, imageSize, type MethodContext, type MethodOutput, type NoiseOptions, type SaliencyMethod } from './method.js';

/** The most noisy copies or path steps a method takes: each is a forward and backward pass (10,000: minutes to hours). */
export const MAX_SAMPLES = 10_000;
/** The most noise, as a fraction of the input's range: 10x the range leaves nothing of the image. */
export const MAX_NOISE = 10;

/** Refuses a sample or step count that is not a whole number from 1 to `MAX_SAMPLES`. */
export function checkSamples(samples: number): void {
  if (!Number.isInteger(samples) || samples < 1 || samples > MAX_SAMPLES)
    throw new CamerasError(`samples must be a whole number from 1 to ${MAX_SAMPLES} (each is a forward and backward pass); got ${samples}`);
}

/**
 * NoiseTunnel (Captum), SmoothGrad's recipe (Smilkov et al. 2017) around any method:
 * raw(x) = (1 / n) sum_i raw_method(x + N(0, sigma^2)), sigma = noise x (max x - min x), the class fixed to the
 * clean input's (given, or its top-1) so every copy explains the same class. The result reports the clean
 * input's probability of that class, and each resolution's top-1 probability averaged over the copies.
 */
export async function noiseTunnel<O extends object>(
  method: SaliencyMethod<O>,
  context: MethodContext,
  input: FloatArray,
  options: CommonOptions & O,
  noise: NoiseOptions,
): Promise<MethodOutput> {
  const samples = noise.samples ?? 25;
  checkSamples(samples);
  if (!(Number.isFinite(noise.noise ?? 0) && (noise.noise ?? 0) >= 0 && (noise.noise ?? 0) <= MAX_NOISE))
    throw new CamerasError(
      `noise must be a fraction of the input's range from 0 to ${MAX_NOISE} (e.g. 0.15; past that the copies are noise alone); got ${noise.noise}`,
    );
  if (!Number.isInteger(noise.seed ?? 0)) throw new CamerasError(`the noise seed must be an integer; got ${noise.seed}`);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of input.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const sigma = (noise.noise ?? 0.15) * (hi - lo);
  const next = gaussian(noise.seed ?? 0);
  // The class is picked where the method picks it (at the first resolution for multi-scale methods), for a
  // classifier's target; a region carries its class, and a predicted region is frozen to the clean input's prediction
  // there; a function target has no class.
  let classIndex = options.classIndex ?? null;
  let target = options.target;
  let cleanProbability: number | undefined;
  if (!isOutputTarget(target)) {
    const size = method.classResolution?.(input, options, context.resolutions) ?? imageSize(input).height;
    const clean = (await context.layer.run(resizeInput(input, size), classIndex, isRegionTarget(target) ? target : undefined)).output;
    if (isRegionTarget(target)) target = frozenRegion(target, clean);
    else {
      classIndex ??= topOne(clean.data).index;
      cleanProbability = probabilityOf(clean.data, classIndex);
    }
  }
  let mean: Float64Array | undefined;
  let first: MethodOutput | undefined;
  const probPerResolution: Record<string, number> = {};
  let completeness: number | undefined;
  for (let s = 0; s < samples; s++) {
    const noisy = { data: Float32Array.from(input.data, (v) => v + sigma * next()), shape: input.shape };
    const out = await method.compute(context, noisy, { ...options, classIndex, target, smooth: undefined, onProgress: undefined });
    mean ??= new Float64Array(out.raw.data.length);
    for (let i = 0; i < mean.length; i++) mean[i] = (mean[i] as number) + (out.raw.data[i] as number) / samples;
    for (const [r, p] of Object.entries(out.probPerResolution ?? {})) probPerResolution[r] = (probPerResolution[r] ?? 0) + p / samples;
    if (out.completenessError !== undefined) completeness = (completeness ?? 0) + out.completenessError / samples;
    first ??= out;
    options.onProgress?.(s + 1, samples);
  }
  const result = first as MethodOutput;
  return {
    ...result,
    raw: { ...result.raw, data: mean as Float64Array },
    // The explained class's probability is the clean input's; the top-1 probabilities are the copies' mean.
    ...(cleanProbability !== undefined ? { classProbability: cleanProbability, probPerResolution } : {}),
    scaleRaws: undefined,
    // Integrated Gradients under the tunnel: the copies' mean completeness error.
    completenessError: completeness,
  };
}
