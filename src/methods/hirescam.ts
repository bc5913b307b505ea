import { camMethod, elementwise } from './base-cam.js';

/** HiResCAM (Draelos and Carin 2020): L(i, j) = sum_k G_k(i, j) A_k(i, j), no spatial averaging of gradients. */
export const hirescam = camMethod({
  name: 'hirescam',
  summary: 'HiResCAM: element-wise gradient times activation, summed over channels (pytorch-grad-cam)',
  map: (layer) => elementwise(layer, (a, g) => g * a),
});
