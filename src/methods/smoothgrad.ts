import { gradient } from './gradient.js';
import type { NoiseOptions, SaliencyMethod } from './method.js';
import { noiseTunnel } from './noise-tunnel.js';

/**
 * SmoothGrad (Smilkov et al. 2017): the vanilla gradient under NoiseTunnel,
 * raw = (1 / n) sum_i dS/dx(x + N(0, sigma^2)), pictured as max_c |raw| per pixel. `samples` (25), `noise`
 * (0.15 of the input's range) and `seed` set the tunnel; `smooth` on any other method does the same to it.
 */
export const smoothgrad: SaliencyMethod<NoiseOptions> = {
  name: 'smoothgrad',
  summary: 'SmoothGrad: the gradient averaged over noisy copies, seeded (Smilkov et al.)',
  needs: ['input-gradient'],
  options: ['samples', 'noise', 'seed'],
  smoothed: true,
  compute: (context, input, options) =>
    noiseTunnel(gradient, context, input, options, { samples: options.samples, noise: options.noise, seed: options.seed }),
  postprocess: (raw, height, width, options) => gradient.postprocess(raw, height, width, options),
};
