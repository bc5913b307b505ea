import { postprocessCam } from '../engine/postprocess.js';
import { targetScore } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { CamOptions } from './base-cam.js';
import { layerPassAt, weightedChannels } from './base-cam.js';
import { plane, type SaliencyMethod } from './method.js';

/** Ablated copies of the layer per call of the network's head (pytorch-grad-cam's batch size). */
const BATCH = 32;

/**
 * Ablation-CAM (Desai and Ramaswamy 2020) as pytorch-grad-cam computes it: channel k of the layer is set to 0
 * (or, where the layer's minimum is not 0, to that minimum - 1e7) and the rest of the network runs;
 * w_k = (S - S_k) / S, the relative drop of the score, and L = sum_k w_k A_k.
 */
export const ablationcam: SaliencyMethod<Pick<CamOptions, 'postprocess'>> = {
  name: 'ablationcam',
  summary: "Ablation-CAM: channels weighted by the score's relative drop when each is removed (pytorch-grad-cam)",
  needs: ['layer-activation', 'head'],
  options: ['postprocess'],
  async compute(context, input, options) {
    const { activation, native, channels, h, w, output, first, cls, target } = await layerPassAt(context, input, options, 'ablationcam');
    const positions = h * w;
    const original = targetScore(output, target, cls);
    // A target the image does not raise (a box the detector does not find) has no relative drop: the reference
    // divides by 0 and returns NaN; here the map is empty.
    if (original === 0) return { ...first, raw: plane(new Float64Array(positions), h, w) };
    if (!Number.isFinite(original)) throw new CamerasError(`the target scores ${original} on the image; Ablation-CAM needs a finite score`);
    const head = await context.head();
    let min = Number.POSITIVE_INFINITY;
    for (const v of activation.data) min = Math.min(min, v);
    const ablated = min === 0 ? 0 : min - 1e7;
    const weights = new Float64Array(channels);
    for (let c0 = 0; c0 < channels; c0 += BATCH) {
      const count = Math.min(BATCH, channels - c0);
      const data = new Float32Array(count * channels * positions);
      for (let k = 0; k < count; k++) {
        data.set(activation.data, k * channels * positions);
        data.fill(ablated, (k * channels + c0 + k) * positions, (k * channels + c0 + k + 1) * positions);
      }
      const outputs = await head({ data, shape: [count, channels, h, w] }, native, input);
      const each = outputs.data.length / count;
      for (let k = 0; k < count; k++) {
        const one = { data: outputs.data.subarray(k * each, (k + 1) * each), shape: [1, ...outputs.shape.slice(1)] };
        const score = targetScore(one, target, cls);
        weights[c0 + k] = (original - score) / original;
      }
      options.onProgress?.(c0 + count, channels);
    }
    return { ...first, raw: plane(weightedChannels(weights, activation.data, channels, positions), h, w) };
  },
  postprocess: (raw, height, width, options) => postprocessCam(raw, height, width, options.postprocess),
};
