import { camMethod, channelSums, weightedChannels } from './base-cam.js';

/**
 * Grad-CAM++ (Chattopadhay et al. 2018) as pytorch-grad-cam computes it, with exponential-free alphas:
 * w_k = sum_ij alpha_k(i, j) ReLU(G_k(i, j)), alpha = G^2 / (2 G^2 + (sum_ij A_k) G^3 + 1e-6), 0 where G = 0.
 */
export const gradcampp = camMethod({
  name: 'gradcampp',
  summary: 'Grad-CAM++: second-order channel weights (pytorch-grad-cam)',
  map: ({ activation, gradient, channels, plane }) => {
    const totals = channelSums(activation, channels, plane);
    const weights = channelSums(gradient, channels, plane, (g, _p, c) => {
      if (g === 0) return 0;
      const g2 = g * g;
      return Math.max(g, 0) * (g2 / (2 * g2 + (totals[c] as number) * g2 * g + 1e-6));
    });
    return weightedChannels(weights, activation, channels, plane);
  },
});
