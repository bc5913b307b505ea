import { postprocessCam } from '../engine/postprocess.js';
import { bilinearTapsAlignCorners, resamplePlanes } from '../engine/resize.js';
import { softmax, targetScore } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';
import type { CamOptions } from './base-cam.js';
import { layerPassAt, weightedChannels } from './base-cam.js';
import { plane, type SaliencyMethod } from './method.js';

/** Masked inputs per ONNX Runtime call (pytorch-grad-cam's BATCH_SIZE). */
const BATCH = 16;

/** One upsampled channel scaled to [0, 1] as score_cam.py does: (U - min) / (max - min + 1e-8). */
export function scoreCamMask(upsampled: Float32Array): Float64Array {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of upsampled) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return Float64Array.from(upsampled, (v) => (v - lo) / (hi - lo + 1e-8));
}

/**
 * Score-CAM (Wang et al. 2020) as pytorch-grad-cam computes it: each activation channel A_k, upsampled to the
 * input (bilinear, align_corners=True) and scaled to [0, 1], M_k = (U_k - min) / (max - min + 1e-8), masks the
 * input; w = softmax_k(S(x * M_k)), L = sum_k w_k A_k. One forward pass per channel.
 */
export const scorecam: SaliencyMethod<Pick<CamOptions, 'postprocess'>> = {
  name: 'scorecam',
  summary: 'Score-CAM: channels weighted by the softmax of masked-input scores (pytorch-grad-cam)',
  needs: ['layer-activation', 'masked-forward'],
  options: ['postprocess'],
  async compute(context, input, options) {
    const { activation, channels, h, w, first, cls, target } = await layerPassAt(context, input, options, 'scorecam');
    const [, inChannels, height, width] = input.shape as [number, number, number, number];
    const upsampled = resamplePlanes(
      activation.data,
      channels,
      h,
      w,
      bilinearTapsAlignCorners(h, height),
      bilinearTapsAlignCorners(w, width),
      height,
      width,
    );
    const positions = height * width;
    const scores = new Float64Array(channels);
    for (let c0 = 0; c0 < channels; c0 += BATCH) {
      const masked: FloatArray[] = [];
      for (let c = c0; c < Math.min(c0 + BATCH, channels); c++) {
        const mask = scoreCamMask(upsampled.subarray(c * positions, (c + 1) * positions));
        const data = new Float32Array(inChannels * positions);
        for (let k = 0; k < inChannels; k++) {
          for (let p = 0; p < positions; p++) data[k * positions + p] = (input.data[k * positions + p] as number) * (mask[p] as number);
        }
        masked.push({ data, shape: input.shape });
      }
      (await context.forward(masked)).forEach((output, k) => {
        scores[c0 + k] = targetScore(output, target, cls);
      });
      options.onProgress?.(Math.min(c0 + BATCH, channels), channels);
    }
    return { ...first, raw: plane(weightedChannels(softmax(scores), activation.data, channels, h * w), h, w) };
  },
  postprocess: (raw, height, width, options) => postprocessCam(raw, height, width, options.postprocess),
};
