import { camMethod, channelSums, weightedChannels } from './base-cam.js';

/** XGrad-CAM (Fu et al. 2020): w_k = sum_ij G_k(i, j) A_k(i, j) / (sum_ij A_k(i, j) + 1e-7). */
export const xgradcam = camMethod({
  name: 'xgradcam',
  summary: 'XGrad-CAM: axiom-based channel weights (pytorch-grad-cam)',
  map: ({ activation, gradient, channels, plane }) => {
    const totals = channelSums(activation, channels, plane);
    const products = channelSums(gradient, channels, plane, (g, p, c) => g * (activation[c * plane + p] as number));
    const weights = products.map((s, c) => s / ((totals[c] as number) + 1e-7));
    return weightedChannels(weights, activation, channels, plane);
  },
});
