import type { InferenceSession } from 'onnxruntime-common';
import type { GradientSession } from '../engine/gradient-session.js';
import type { OrtRuntime } from '../engine/runtime.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { postprocessCam } from './cam.js';
import { type CamerasResult, checkClass, probabilityOf, topOne } from './cameras.js';

/**
 * Ablation-CAM (Desai and Ramaswamy 2020) as pytorch-grad-cam computes it: each channel of the layer in turn
 * is set to 0 (or, where the layer's minimum is not 0, to that minimum - 1e7) and the rest of the network
 * runs; a channel's weight is the relative drop of the class logit, (s - s_c) / s.
 */
export async function explainAblationCam(
  runtime: OrtRuntime,
  session: GradientSession,
  head: { session: InferenceSession; input: string; logits: string },
  input: FloatArray,
  classIndex: number | null,
  batch = 32,
): Promise<CamerasResult> {
  if (classIndex !== null) checkClass(classIndex, session.classCount);
  const [, , height, width] = input.shape as [number, number, number, number];
  if (height !== width) throw new CamerasError(`ablationcam needs a square input; got ${height} x ${width}`);
  const pass = await session.run(input, classIndex);
  const activation = pass.targets[0]?.activation;
  if (!activation) throw new CamerasError('ablationcam needs an intermediate layer as target, not the input');
  const [, channels, h, w] = activation.shape as [number, number, number, number];
  const plane = h * w;
  const top = topOne(pass.logits.data);
  const cls = classIndex ?? top.index;
  const original = pass.logits.data[cls] as number;
  let min = Number.POSITIVE_INFINITY;
  for (const v of activation.data) min = Math.min(min, v);
  const ablated = min === 0 ? 0 : min - 1e7;
  const weights = new Float64Array(channels);
  for (let c0 = 0; c0 < channels; c0 += batch) {
    const count = Math.min(batch, channels - c0);
    const data = new Float32Array(count * channels * plane);
    for (let k = 0; k < count; k++) {
      data.set(activation.data, k * channels * plane);
      data.fill(ablated, (k * channels + c0 + k) * plane, (k * channels + c0 + k + 1) * plane);
    }
    const out = await head.session.run({ [head.input]: new runtime.Tensor('float32', data, [count, channels, h, w]) });
    const logits = out[head.logits]?.data as Float32Array;
    const classes = logits.length / count;
    for (let k = 0; k < count; k++) weights[c0 + k] = (original - (logits[k * classes + cls] as number)) / original;
  }
  const cam = new Float64Array(plane);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < plane; p++) cam[p] = (cam[p] as number) + (weights[c] as number) * (activation.data[c * plane + p] as number);
  }
  return {
    ...postprocessCam(cam, h, w, height),
    method: 'ablationcam',
    classIndex: cls,
    classPerResolution: { [height]: cls },
    probPerResolution: { [height]: top.probability },
    usedResolutions: [height],
    classProbability: probabilityOf(pass.logits.data, cls),
  };
}
