import { camMethod } from './base-cam.js';

/**
 * NormGrad (Rebuffi et al. 2020), single layer: L(i, j) = ||A(i, j)||_2 ||G(i, j)||_2 over channels, the norm
 * of the weight gradient a 1x1 convolution at position (i, j) would receive.
 */
export const normgrad = camMethod({
  name: 'normgrad',
  summary: 'NormGrad: |activation| x |gradient| at each position (Rebuffi et al.)',
  map: ({ activation, gradient, channels, plane }) => {
    const cam = new Float64Array(plane);
    for (let p = 0; p < plane; p++) {
      let a2 = 0;
      let g2 = 0;
      for (let c = 0; c < channels; c++) {
        a2 += (activation[c * plane + p] as number) ** 2;
        g2 += (gradient[c * plane + p] as number) ** 2;
      }
      cam[p] = Math.sqrt(a2 * g2);
    }
    return cam;
  },
});
