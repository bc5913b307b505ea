import { minMax, reduceChannels } from '../engine/postprocess.js';
import type { FloatArray } from '../io/npy.js';
import { singleScaleOutput } from './base-cam.js';
import type { CommonOptions, MethodContext, MethodOutput, SaliencyMethod } from './method.js';

/** One pass to the input pixels: the raw attribution `transform(dS/dx, x)` in the input's shape. */
export async function inputAttribution(
  context: MethodContext,
  input: FloatArray,
  options: CommonOptions,
  transform: (gradient: number, value: number) => number = (g) => g,
): Promise<MethodOutput> {
  const session = await context.inputGradients();
  const pass = await session.run(input, options.classIndex ?? null, options.target);
  const [, channels, height, width] = input.shape as [number, number, number, number];
  const gradient = pass.targets[0]?.gradient.data as Float32Array;
  const data = Float64Array.from(gradient, (g, i) => transform(g, input.data[i] as number));
  options.onProgress?.(1, 1);
  return singleScaleOutput({ data, channels, height, width }, input, pass.output, options.classIndex ?? null, options.target);
}

/** Vanilla gradient (Simonyan et al. 2014): raw dS/dx; the picture is max_c |dS/dx_c| per pixel, min-max scaled. */
export const gradient: SaliencyMethod = {
  name: 'gradient',
  summary: 'Gradient: max |dS/dx| over colour channels (Simonyan et al.)',
  needs: ['input-gradient'],
  options: [],
  compute: (context, input, options) => inputAttribution(context, input, options),
  postprocess: (raw, height, width) => minMax(reduceChannels(raw, 'maxAbs'), width, height),
};
