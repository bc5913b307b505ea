import { minMax } from '../engine/postprocess.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import { oneScaleFacts } from './base-cam.js';
import type { SaliencyMethod } from './method.js';
import { classRow, classTokenRow, tokensOf } from './rollout.js';

/**
 * Chefer et al.'s generic attention explainability (ICCV 2021, hila-chefer/Transformer-MM-Explainability's
 * `generate_relevance`): R = I, and per block R <- R + mean_h(max(0, dS/dA_h * A_h)) R, with A_h a head's attention
 * probabilities and S the target; the map is the class token's row over the patches, R[0, prefix:] (computed as a
 * row vector through the blocks: T^2 per block, not T^3), resized
 * bilinearly to the input and min-max scaled, as its ViT notebook shows it.
 */
export const chefer: SaliencyMethod = {
  name: 'chefer',
  summary: "Chefer et al.'s gradient-weighted attention rollout (ICCV 2021; Transformer-MM-Explainability)",
  needs: ['attention-gradient'],
  options: [],
  compute: async (context, input, options) => {
    const pass = await (await context.attention()).run(input, options.classIndex ?? null, options.target);
    const tokens = tokensOf(pass);
    const size = tokens * tokens;
    // Per block W = mean_h(max(0, dS/dA_h * A_h)); R = (I + W_L) ... (I + W_1), of which row 0 is the map.
    const weights = pass.blocks.map(({ attention, gradient }) => {
      const heads = attention.shape[0] as number;
      const weighted = new Float64Array(size);
      for (let h = 0; h < heads; h++)
        for (let p = 0; p < size; p++)
          weighted[p] =
            (weighted[p] as number) + Math.max(0, (gradient.data[h * size + p] as number) * (attention.data[h * size + p] as number));
      for (let p = 0; p < size; p++) weighted[p] = (weighted[p] as number) / heads;
      return weighted;
    });
    options.onProgress?.(1, 1);
    return {
      raw: classRow(classTokenRow(weights, tokens, true), pass),
      ...oneScaleFacts(input, pass.output, options.classIndex ?? null, options.target),
    };
  },
  postprocess: (raw, height, width) => minMax(resizePlaneBilinear(raw.data, raw.height, raw.width, height, width), width, height),
};
