import { minMax, reduceChannels } from '../engine/postprocess.js';
import { inputAttribution } from './gradient.js';
import type { SaliencyMethod } from './method.js';

/** Gradient x input (Shrikumar et al. 2016): raw x * dS/dx; the picture is |sum_c| per pixel, min-max scaled. */
export const gradientXInput: SaliencyMethod = {
  name: 'gradient_x_input',
  summary: 'Gradient x input: |sum over channels of x dS/dx| (Shrikumar et al.)',
  needs: ['input-gradient'],
  options: [],
  compute: (context, input, options) => inputAttribution(context, input, options, (g, x) => g * x),
  postprocess: (raw, height, width) => minMax(reduceChannels(raw, 'absSum'), width, height),
};
