import { camMethod, elementwise } from './base-cam.js';

/** LayerCAM (Jiang et al. 2021): L(i, j) = sum_k ReLU(G_k(i, j)) A_k(i, j). */
export const layercam = camMethod({
  name: 'layercam',
  summary: 'LayerCAM: positive gradients times activations (pytorch-grad-cam)',
  map: (layer) => elementwise(layer, (a, g) => Math.max(g, 0) * a),
});
