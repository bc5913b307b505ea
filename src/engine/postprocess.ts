import { resizePlaneBilinear } from './resize.js';

/** A saliency map ready to show. */
export interface SaliencyMap {
  /** Row-major `height x width` values in [0, 1]. */
  map: Float32Array;
  width: number;
  height: number;
  /** True when the map is zero everywhere (nothing survived the ReLU): `map` is then all zero. */
  empty: boolean;
}

/**
 * A method's map before post-processing: signed, at the layer's or the input's size, `channels` planes of
 * `height x width` (1 for a map; the input's channels for input attributions, as Captum returns them).
 */
export interface RawMap {
  data: Float64Array;
  channels: number;
  height: number;
  width: number;
}

/** max(0, v) in place. */
export function relu(values: Float64Array): Float64Array {
  for (let p = 0; p < values.length; p++) values[p] = Math.max(0, values[p] as number);
  return values;
}

/**
 * (v - min) / (max - min) into [0, 1]. A constant map (the reference divides by zero and returns NaN) comes
 * back all zero and `empty`.
 */
export function minMax(values: Float64Array | Float32Array, width: number, height: number): SaliencyMap {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const empty = !(max > min);
  const map = empty ? new Float32Array(values.length) : Float32Array.from(values, (v) => (v - min) / (max - min));
  return { map, width, height, empty };
}

/** pytorch-grad-cam's `scale_cam_image`: minus the minimum, over (1e-7 + the maximum of that). */
export function scaleLikeGradCam(values: Float64Array | Float32Array): Float32Array {
  let min = Number.POSITIVE_INFINITY;
  for (const v of values) if (v < min) min = v;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v - min > max) max = v - min;
  return Float32Array.from(values, (v) => (v - min) / (1e-7 + max));
}

/** How a CAM's raw map becomes the picture: pytorch-grad-cam's order (default), or resized first. */
export type CamPostprocess = 'pytorch-grad-cam' | 'resize-first';

/**
 * `pytorch-grad-cam`: ReLU, scale, bilinear resize (half-pixel, as cv2.resize) to `size`, scale again, the
 * order pytorch-grad-cam uses, so maps compare with its outputs. `resize-first`: resize the raw map, then
 * ReLU and min-max, as CAMERAS does: the zero level is placed before interpolation blurs it.
 */
export function postprocessCam(raw: RawMap, outH: number, outW: number, mode: CamPostprocess = 'pytorch-grad-cam'): SaliencyMap {
  const { height, width } = raw;
  if (mode === 'resize-first') return minMax(relu(resizePlaneBilinear(raw.data, height, width, outH, outW)), outW, outH);
  const positive = relu(Float64Array.from(raw.data));
  let max = 0;
  for (const v of positive) if (v > max) max = v;
  const resized = resizePlaneBilinear(scaleLikeGradCam(positive), height, width, outH, outW);
  return { map: scaleLikeGradCam(resized), width: outW, height: outH, empty: !(max > 0) };
}

/** Per pixel over an attribution's channels: the largest |value|, or |sum| (for signed attributions). */
export function reduceChannels(raw: RawMap, mode: 'maxAbs' | 'absSum'): Float64Array {
  const plane = raw.height * raw.width;
  const out = new Float64Array(plane);
  for (let p = 0; p < plane; p++) {
    let v = 0;
    for (let c = 0; c < raw.channels; c++) {
      const x = raw.data[c * plane + p] as number;
      v = mode === 'maxAbs' ? Math.max(v, Math.abs(x)) : v + x;
    }
    out[p] = mode === 'maxAbs' ? v : Math.abs(v);
  }
  return out;
}
