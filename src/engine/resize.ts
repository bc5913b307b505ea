import type { FloatArray } from '../io/npy.js';

/**
 * PyTorch's `F.interpolate` for `align_corners=False` (half-pixel centres), no antialiasing, written as
 * separable taps so it runs the same in Node and the browser. PyTorch rounds the scale `in / out` to
 * float32 but computes the source position in double; we do the same, which takes the bicubic weights
 * from 1e-5 to 5e-7 of PyTorch's (measured on impulse responses, 224 -> 924).
 */

/** Per output index: source indices and weights, `taps` of each. */
export interface Taps {
  taps: number;
  index: Int32Array;
  weight: Float64Array;
}

const f32 = Math.fround;

function sourceIndex(scale: number, dst: number, clampNegative: boolean): number {
  const src = scale * (dst + 0.5) - 0.5;
  return clampNegative && src < 0 ? 0 : src;
}

/** Bilinear taps (PyTorch `upsample_bilinear2d`): negative source positions clamp to 0. */
export function bilinearTaps(inSize: number, outSize: number): Taps {
  const scale = f32(inSize / outSize);
  const index = new Int32Array(outSize * 2);
  const weight = new Float64Array(outSize * 2);
  for (let o = 0; o < outSize; o++) {
    const src = sourceIndex(scale, o, true);
    const i0 = Math.floor(src);
    const i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
    const l1 = src - i0;
    index[2 * o] = i0;
    index[2 * o + 1] = i1;
    weight[2 * o] = f32(1 - l1);
    weight[2 * o + 1] = l1;
  }
  return { taps: 2, index, weight };
}

/** Bilinear taps with `align_corners=True` (torch's UpsamplingBilinear2d): corners map to corners. */
export function bilinearTapsAlignCorners(inSize: number, outSize: number): Taps {
  const index = new Int32Array(outSize * 2);
  const weight = new Float64Array(outSize * 2);
  const scale = outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  for (let o = 0; o < outSize; o++) {
    const src = o * scale;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    index[2 * o] = i0;
    index[2 * o + 1] = i1;
    weight[2 * o] = 1 - (src - i0);
    weight[2 * o + 1] = src - i0;
  }
  return { taps: 2, index, weight };
}

/** Keys' cubic convolution with PyTorch's a = -0.75. */
function cubicWeights(t: number, a = -0.75): [number, number, number, number] {
  const near = (x: number) => ((a + 2) * x - (a + 3)) * x * x + 1;
  const far = (x: number) => ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Bicubic taps (PyTorch `upsample_bicubic2d`): four neighbours, indices clamped to the border. */
export function bicubicTaps(inSize: number, outSize: number): Taps {
  const scale = f32(inSize / outSize);
  const index = new Int32Array(outSize * 4);
  const weight = new Float64Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const src = sourceIndex(scale, o, false);
    const i = Math.floor(src);
    const w = cubicWeights(src - i);
    for (let k = 0; k < 4; k++) {
      index[4 * o + k] = Math.min(Math.max(i - 1 + k, 0), inSize - 1);
      weight[4 * o + k] = w[k] as number;
    }
  }
  return { taps: 4, index, weight };
}

/**
 * Resamples `planes` images of `inH x inW` (contiguous, as in NCHW) to `outH x outW` with the given
 * taps: rows first into a scratch buffer, then columns.
 */
export function resamplePlanes(
  source: Float32Array,
  planes: number,
  inH: number,
  inW: number,
  rows: Taps,
  cols: Taps,
  outH: number,
  outW: number,
): Float32Array {
  const out = new Float32Array(planes * outH * outW);
  const scratch = new Float64Array(inH * outW);
  for (let p = 0; p < planes; p++) {
    horizontal(source, p * inH * inW, inH, inW, cols, outW, scratch);
    vertical(scratch, rows, outH, outW, out, p * outH * outW, 1, false);
  }
  return out;
}

/** Interpolates each of `height` rows (width `inW`) to `outW` columns into `scratch`. */
export function horizontal(
  source: Float32Array | Float64Array,
  offset: number,
  height: number,
  inW: number,
  cols: Taps,
  outW: number,
  scratch: Float64Array,
): void {
  const { taps, index, weight } = cols;
  for (let y = 0; y < height; y++) {
    const row = offset + y * inW;
    const dst = y * outW;
    if (taps === 4) {
      // Unrolled (bicubic: every scale's input resize), in the same order of additions as the general loop.
      for (let x = 0, t = 0; x < outW; x++, t += 4) {
        let sum = 0;
        sum += (weight[t] as number) * (source[row + (index[t] as number)] as number);
        sum += (weight[t + 1] as number) * (source[row + (index[t + 1] as number)] as number);
        sum += (weight[t + 2] as number) * (source[row + (index[t + 2] as number)] as number);
        sum += (weight[t + 3] as number) * (source[row + (index[t + 3] as number)] as number);
        scratch[dst + x] = sum;
      }
      continue;
    }
    for (let x = 0; x < outW; x++) {
      let sum = 0;
      for (let k = 0; k < taps; k++) sum += weight[x * taps + k] * (source[row + index[x * taps + k]] as number);
      scratch[dst + x] = sum;
    }
  }
}

/** Interpolates columns of `scratch` to `outH` rows and writes (or, with `accumulate`, adds) `scale *` the result. */
export function vertical(
  scratch: Float64Array,
  rows: Taps,
  outH: number,
  outW: number,
  out: Float32Array | Float64Array,
  offset: number,
  scale: number,
  accumulate: boolean,
): void {
  const { taps, index, weight } = rows;
  for (let y = 0; y < outH; y++) {
    const dst = offset + y * outW;
    const t = y * taps;
    // One pass per output row: every tap read once, the output written (or added to) once.
    if (taps === 2) {
      const w0 = (weight[t] as number) * scale;
      const w1 = (weight[t + 1] as number) * scale;
      const s0 = (index[t] as number) * outW;
      const s1 = (index[t + 1] as number) * outW;
      if (accumulate) for (let x = 0; x < outW; x++) out[dst + x] += w0 * (scratch[s0 + x] as number) + w1 * (scratch[s1 + x] as number);
      else for (let x = 0; x < outW; x++) out[dst + x] = w0 * (scratch[s0 + x] as number) + w1 * (scratch[s1 + x] as number);
    } else if (taps === 4) {
      const w0 = (weight[t] as number) * scale;
      const w1 = (weight[t + 1] as number) * scale;
      const w2 = (weight[t + 2] as number) * scale;
      const w3 = (weight[t + 3] as number) * scale;
      const s0 = (index[t] as number) * outW;
      const s1 = (index[t + 1] as number) * outW;
      const s2 = (index[t + 2] as number) * outW;
      const s3 = (index[t + 3] as number) * outW;
      for (let x = 0; x < outW; x++) {
        const v =
          w0 * (scratch[s0 + x] as number) +
          w1 * (scratch[s1 + x] as number) +
          w2 * (scratch[s2 + x] as number) +
          w3 * (scratch[s3 + x] as number);
        out[dst + x] = accumulate ? (out[dst + x] as number) + v : v;
      }
    } else {
      for (let x = 0; x < outW; x++) {
        let v = 0;
        for (let k = 0; k < taps; k++) v += (weight[t + k] as number) * scale * (scratch[(index[t + k] as number) * outW + x] as number);
        out[dst + x] = accumulate ? (out[dst + x] as number) + v : v;
      }
    }
  }
}

/** `F.interpolate(x, (outH, outW), mode='bicubic', align_corners=False)` on an NCHW tensor. */
export function resizeBicubic(data: Float32Array, shape: number[], outH: number, outW: number): Float32Array {
  const [n, c, h, w] = shape as [number, number, number, number];
  return resamplePlanes(data, n * c, h, w, bicubicTaps(h, outH), bicubicTaps(w, outW), outH, outW);
}

/** `F.interpolate(x, (outH, outW), mode='bilinear', align_corners=False)` on an NCHW tensor. */
export function resizeBilinear(data: Float32Array, shape: number[], outH: number, outW: number): Float32Array {
  const [n, c, h, w] = shape as [number, number, number, number];
  return resamplePlanes(data, n * c, h, w, bilinearTaps(h, outH), bilinearTaps(w, outW), outH, outW);
}

/**
 * One plane of `height x width` resized bilinearly (half-pixel, as cv2.resize and F.interpolate) to
 * `outH x outW`, written into `into` (or added to it, times `scale`, with `accumulate`).
 */
export function resizePlaneBilinear(
  source: Float32Array | Float64Array,
  height: number,
  width: number,
  outH: number,
  outW: number,
  into: Float64Array = new Float64Array(outH * outW),
  scale = 1,
  accumulate = false,
): Float64Array {
  const scratch = new Float64Array(height * outW);
  horizontal(source, 0, height, width, bilinearTaps(width, outW), outW, scratch);
  vertical(scratch, bilinearTaps(height, outH), outH, outW, into, 0, scale, accumulate);
  return into;
}

/** An NCHW image resized bicubically (as CAMERAS resizes its input per scale) to `size x size`; itself if already that size. */
export function resizeInput(input: FloatArray, size: number): FloatArray {
  const [n, channels, height, width] = input.shape as [number, number, number, number];
  if (height === size && width === size) return input;
  return { data: resizeBicubic(input.data, input.shape, size, size), shape: [n, channels, size, size] };
}
