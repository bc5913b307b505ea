import type { InferenceSession } from 'onnxruntime-common';
import type { GradientSession } from '../engine/gradient-session.js';
import type { OrtRuntime } from '../engine/runtime.js';
import type { FloatArray } from '../io/npy.js';
import { layerPass, postprocessCam, singleScaleResult, weightedChannels } from './cam.js';
import type { CamerasResult } from './cameras.js';

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
  const { activation, logits, channels, h, w, size, cls } = await layerPass(session, input, 'ablationcam', classIndex);
  const plane = h * w;
  const original = logits[cls] as number;
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
    const ablatedLogits = out[head.logits]?.data as Float32Array;
    const classes = ablatedLogits.length / count;
    for (let k = 0; k < count; k++) weights[c0 + k] = (original - (ablatedLogits[k * classes + cls] as number)) / original;
  }
  return singleScaleResult(
    postprocessCam(weightedChannels(weights, activation.data, channels, plane), h, w, size),
    'ablationcam',
    cls,
    logits,
    size,
  );
}
