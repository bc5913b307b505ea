import type { GradientSession } from '../engine/gradient-session.js';
import { bilinearTapsAlignCorners, resamplePlanes } from '../engine/resize.js';
import type { FloatArray } from '../io/npy.js';
import { layerPass, postprocessCam, singleScaleResult, weightedChannels } from './cam.js';
import type { CamerasResult } from './cameras.js';

/**
 * Score-CAM (Wang et al. 2020) as pytorch-grad-cam computes it: each activation channel, upsampled to the
 * input (bilinear, align_corners=True) and scaled to [0, 1] (+1e-5), masks the input; the class logit of
 * each masked input, softmaxed over channels, weights the channels. One forward pass per channel.
 */
export async function explainScoreCam(
  session: GradientSession,
  input: FloatArray,
  classIndex: number | null,
  batch = 16,
): Promise<CamerasResult> {
  const { activation, logits, channels, h, w, size, cls } = await layerPass(session, input, 'scorecam', classIndex);
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
  const plane = height * width;
  const scores = new Float64Array(channels);
  for (let c0 = 0; c0 < channels; c0 += batch) {
    const masked: FloatArray[] = [];
    for (let c = c0; c < Math.min(c0 + batch, channels); c++) {
      const mask = upsampled.subarray(c * plane, (c + 1) * plane);
      let lo = Number.POSITIVE_INFINITY;
      let hi = Number.NEGATIVE_INFINITY;
      for (const v of mask) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const data = new Float32Array(inChannels * plane);
      for (let k = 0; k < inChannels; k++) {
        for (let p = 0; p < plane; p++)
          data[k * plane + p] = (input.data[k * plane + p] as number) * (((mask[p] as number) - lo) / (hi - lo + 1e-5));
      }
      masked.push({ data, shape: input.shape });
    }
    const passes = await session.runEach(masked, cls);
    passes.forEach((p, k) => {
      scores[c0 + k] = p.logits.data[cls] as number;
    });
  }
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) max = Math.max(max, s);
  let total = 0;
  for (const s of scores) total += Math.exp(s - max);
  const weights = Float64Array.from(scores, (s) => Math.exp(s - max) / total);
  return singleScaleResult(
    postprocessCam(weightedChannels(weights, activation.data, channels, h * w), h, w, size),
    'scorecam',
    cls,
    logits,
    size,
  );
}
