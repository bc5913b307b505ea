import type { GradientSession } from '../engine/gradient-session.js';
import { bilinearTapsAlignCorners, resamplePlanes } from '../engine/resize.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { postprocessCam } from './cam.js';
import { type CamerasResult, checkClass, probabilityOf, topOne } from './cameras.js';

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
  if (classIndex !== null) checkClass(classIndex, session.classCount);
  const [, inChannels, height, width] = input.shape as [number, number, number, number];
  if (height !== width) throw new CamerasError(`scorecam needs a square input; got ${height} x ${width}`);
  const pass = await session.run(input, classIndex);
  const activation = pass.targets[0]?.activation;
  if (!activation) throw new CamerasError('scorecam needs an intermediate layer as target, not the input');
  const [, channels, h, w] = activation.shape as [number, number, number, number];
  const top = topOne(pass.logits.data);
  const cls = classIndex ?? top.index;
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
  const cam = new Float64Array(h * w);
  for (let c = 0; c < channels; c++) {
    const weight = Math.exp((scores[c] as number) - max) / total;
    for (let p = 0; p < h * w; p++) cam[p] = (cam[p] as number) + weight * (activation.data[c * h * w + p] as number);
  }
  return {
    ...postprocessCam(cam, h, w, height),
    method: 'scorecam',
    classIndex: cls,
    classPerResolution: { [height]: cls },
    probPerResolution: { [height]: top.probability },
    usedResolutions: [height],
    classProbability: probabilityOf(pass.logits.data, cls),
  };
}
