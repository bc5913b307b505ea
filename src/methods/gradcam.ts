import { camMethod, channelSums, weightedChannels } from './base-cam.js';

/**
 * Grad-CAM (Selvaraju et al. 2017): L = sum_k w_k A_k with w_k = (1 / HW) sum_ij dS/dA_k(i, j), the
 * gradients' spatial mean (pytorch-grad-cam's `GradCAM`).
 */
export const gradcam = camMethod({
  name: 'gradcam',
  summary: 'Grad-CAM: channels weighted by their mean gradient (pytorch-grad-cam)',
  map: ({ activation, gradient, channels, plane }) =>
    weightedChannels(
      channelSums(gradient, channels, plane).map((s) => s / plane),
      activation,
      channels,
      plane,
    ),
});
