import { camMethod, elementwise } from './base-cam.js';

/** Grad-CAM element-wise (pytorch-grad-cam's `GradCAMElementWise`): L(i, j) = sum_k ReLU(G_k(i, j) A_k(i, j)). */
export const gradcamElementwise = camMethod({
  name: 'gradcam_elementwise',
  summary: 'Grad-CAM element-wise: ReLU of gradient times activation, summed over channels (pytorch-grad-cam)',
  map: (layer) => elementwise(layer, (a, g) => Math.max(g * a, 0)),
});
