import type { GradientSession } from '../engine/gradient-session.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { singleScaleResult } from './cam.js';
import { type CamerasResult, checkClass, type SaliencyMap, topOne } from './cameras.js';

/** Methods that differentiate the class score with respect to the input pixels. */
export const INPUT_GRADIENT_METHODS = ['gradient', 'gradient_x_input', 'smoothgrad', 'integrated_gradients'] as const;
export type InputGradientMethod = (typeof INPUT_GRADIENT_METHODS)[number];

export interface InputGradientOptions {
  classIndex?: number | null;
  /** SmoothGrad samples (default 25) or Integrated Gradients steps (default 64). */
  samples?: number;
  /** SmoothGrad noise as a fraction of the input's range (default 0.15, as Smilkov et al.). */
  noise?: number;
  /** Seed of SmoothGrad's noise: the same seed gives the same map. */
  seed?: number;
}

/** A seeded generator of standard normal numbers (mulberry32 and Box-Muller). */
function gaussian(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** Per pixel: the largest |value| over channels, or |sum over channels| (signed attributions). */
function reduceChannels(data: Float32Array | Float64Array, channels: number, plane: number, mode: 'maxAbs' | 'absSum'): Float64Array {
  const out = new Float64Array(plane);
  for (let p = 0; p < plane; p++) {
    let v = 0;
    for (let c = 0; c < channels; c++) {
      const x = data[c * plane + p] as number;
      v = mode === 'maxAbs' ? Math.max(v, Math.abs(x)) : v + x;
    }
    out[p] = mode === 'maxAbs' ? v : Math.abs(v);
  }
  return out;
}

function minMax(values: Float64Array, width: number, height: number): SaliencyMap {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const empty = !(max > min);
  const map = empty ? new Float32Array(values.length) : Float32Array.from(values, (v) => (v - min) / (max - min));
  return { map, width, height, empty };
}

export interface InputGradientResult extends CamerasResult {
  /** Integrated Gradients: |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|. */
  completenessError?: number;
}

/**
 * Input-gradient saliency: the vanilla gradient (Simonyan et al.; max |.| over channels), gradient x input,
 * SmoothGrad (the gradient averaged over noisy copies, seeded) and Integrated Gradients (Sundararajan et al.;
 * zero baseline in the normalised space, trapezoid rule), whose completeness error is reported.
 */
export async function explainInputGradient(
  session: GradientSession,
  input: FloatArray,
  method: InputGradientMethod,
  options: InputGradientOptions = {},
): Promise<InputGradientResult> {
  const [, channels, height, width] = input.shape as [number, number, number, number];
  const plane = height * width;
  const requested = options.classIndex ?? null;
  if (requested !== null) checkClass(requested, session.classCount);
  const first = await session.run(input, requested);
  const top = topOne(first.logits.data);
  const cls = requested ?? top.index;
  const gradientAt = async (x: Float32Array) =>
    (await session.run({ data: x, shape: input.shape }, cls)).targets[0]?.gradient.data as Float32Array;
  const inputGradient = first.targets[0]?.gradient.data as Float32Array;
  let values: Float64Array;
  let completenessError: number | undefined;
  switch (method) {
    case 'gradient':
      values = reduceChannels(inputGradient, channels, plane, 'maxAbs');
      break;
    case 'gradient_x_input':
      values = reduceChannels(
        Float64Array.from(inputGradient, (g, i) => g * (input.data[i] as number)),
        channels,
        plane,
        'absSum',
      );
      break;
    case 'smoothgrad': {
      const samples = options.samples ?? 25;
      let lo = Number.POSITIVE_INFINITY;
      let hi = Number.NEGATIVE_INFINITY;
      for (const v of input.data) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const sigma = (options.noise ?? 0.15) * (hi - lo);
      const next = gaussian(options.seed ?? 0);
      const mean = new Float64Array(input.data.length);
      for (let s = 0; s < samples; s++) {
        const noisy = Float32Array.from(input.data, (v) => v + sigma * next());
        const g = await gradientAt(noisy);
        for (let i = 0; i < mean.length; i++) mean[i] = (mean[i] as number) + (g[i] as number) / samples;
      }
      values = reduceChannels(mean, channels, plane, 'maxAbs');
      break;
    }
    case 'integrated_gradients': {
      const steps = options.samples ?? 64;
      const average = new Float64Array(input.data.length);
      // Trapezoid rule over alpha in [0, 1] along the straight path from the zero baseline.
      for (let k = 0; k <= steps; k++) {
        const alpha = k / steps;
        const g = k === steps ? inputGradient : await gradientAt(Float32Array.from(input.data, (v) => alpha * v));
        const w = (k === 0 || k === steps ? 0.5 : 1) / steps;
        for (let i = 0; i < average.length; i++) average[i] = (average[i] as number) + w * (g[i] as number);
      }
      const attributions = Float64Array.from(average, (g, i) => g * (input.data[i] as number));
      const baseline = await session.run({ data: new Float32Array(input.data.length), shape: input.shape }, cls);
      const delta = (first.logits.data[cls] as number) - (baseline.logits.data[cls] as number);
      const total = attributions.reduce((a, b) => a + b, 0);
      completenessError = Math.abs(total - delta) / Math.max(Math.abs(delta), 1e-12);
      values = reduceChannels(attributions, channels, plane, 'absSum');
      break;
    }
    default:
      throw new CamerasError(`unknown input-gradient method ${String(method)}`);
  }
  return {
    ...singleScaleResult(minMax(values, width, height), method, cls, first.logits.data, height),
    ...(completenessError === undefined ? {} : { completenessError }),
  };
}
