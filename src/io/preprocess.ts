import { CamerasError } from '../errors.js';
import type { FloatArray } from './npy.js';

/** Decoded pixels: row-major RGB, 3 bytes per pixel. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface PreprocessPreset {
  /** Square side the image is resized to (a model entry may override it). */
  size: number;
  /** Per channel: (value / 255 - mean) / std, in the preset's channel order. */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Channels in BGR order (Caffe-style Keras models). */
  bgr?: boolean;
}

/**
 * `torchvision`: what the CAMERAS authors' demo feeds ImageNet models: OpenCV's bilinear resize to 224
 * (half-pixel, no antialiasing, rounded to uint8), /255, ImageNet mean and std. `unit`: /255 (TF.js
 * models such as nsfwjs). `keras-tf`: /127.5 - 1 (Keras MobileNet, Inception, Xception). `keras-caffe`:
 * BGR minus the ImageNet means in 0-255 (Keras ResNet50, VGG16). All resize with the same OpenCV kernel.
 */
export const PRESETS: Readonly<Record<string, PreprocessPreset>> = {
  torchvision: { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  unit: { size: 224, mean: [0, 0, 0], std: [1, 1, 1] },
  'keras-tf': { size: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  'keras-caffe': { size: 224, mean: [103.939 / 255, 116.779 / 255, 123.68 / 255], std: [1 / 255, 1 / 255, 1 / 255], bgr: true },
};

export function presetByName(name: string): PreprocessPreset {
  const preset = PRESETS[name];
  if (!preset) throw new CamerasError(`unknown preprocessing '${name}'; choose one of: ${Object.keys(PRESETS).join(', ')}`);
  return preset;
}

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

/** Per output index: the two source indices and their fixed-point weights, as OpenCV computes them. */
function linearCoefficients(inSize: number, outSize: number): { index: Int32Array; weight: Int32Array } {
  const scale = inSize / outSize;
  const index = new Int32Array(outSize * 2);
  const weight = new Int32Array(outSize * 2);
  for (let o = 0; o < outSize; o++) {
    let f = (o + 0.5) * scale - 0.5;
    let i = Math.floor(f);
    f -= i;
    if (i < 0) {
      i = 0;
      f = 0;
    }
    if (i >= inSize - 1) {
      i = inSize - 1;
      f = 0;
    }
    index[2 * o] = i;
    index[2 * o + 1] = Math.min(i + 1, inSize - 1);
    weight[2 * o] = Math.round((1 - f) * COEF_SCALE);
    weight[2 * o + 1] = Math.round(f * COEF_SCALE);
  }
  return { index, weight };
}

/**
 * `cv2.resize(..., interpolation=INTER_LINEAR)` on 8-bit RGB: 11-bit fixed-point weights, a horizontal
 * pass into integers, and the vertical pass with the rounding of OpenCV's SSE2 path, so a photo goes
 * through the same pixels the authors' demo sees.
 */
export function resizeLinearUint8(image: RgbImage, outW: number, outH: number): RgbImage {
  if (image.width === outW && image.height === outH) return image;
  const cols = linearCoefficients(image.width, outW);
  const rows = linearCoefficients(image.height, outH);
  const horizontal = new Int32Array(image.height * outW * 3);
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < outW; x++) {
      const a = (y * image.width + (cols.index[2 * x] as number)) * 3;
      const b = (y * image.width + (cols.index[2 * x + 1] as number)) * 3;
      const wa = cols.weight[2 * x] as number;
      const wb = cols.weight[2 * x + 1] as number;
      for (let c = 0; c < 3; c++) {
        horizontal[(y * outW + x) * 3 + c] = (image.data[a + c] as number) * wa + (image.data[b + c] as number) * wb;
      }
    }
  }
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    const r0 = (rows.index[2 * y] as number) * outW * 3;
    const r1 = (rows.index[2 * y + 1] as number) * outW * 3;
    const b0 = rows.weight[2 * y] as number;
    const b1 = rows.weight[2 * y + 1] as number;
    for (let i = 0; i < outW * 3; i++) {
      const v = (((b0 * ((horizontal[r0 + i] as number) >> 4)) >> 16) + ((b1 * ((horizontal[r1 + i] as number) >> 4)) >> 16) + 2) >> 2;
      out[y * outW * 3 + i] = v < 0 ? 0 : Math.min(v, 255);
    }
  }
  return { data: out, width: outW, height: outH };
}

/**
 * RGB bytes -> normalised float NCHW `[1, 3, H, W]`: (v / 255 - mean) / std per channel, in float32 with float32
 * mean and std, as torchvision's `ToTensor` and `Normalize` compute it: the authors' demo's tensor to the bit.
 */
export function normalise(image: RgbImage, preset: PreprocessPreset): FloatArray {
  const plane = image.width * image.height;
  const data = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(preset.mean[c] as number);
    const std = Math.fround(preset.std[c] as number);
    const from = preset.bgr ? 2 - c : c;
    for (let p = 0; p < plane; p++) {
      data[c * plane + p] = Math.fround(Math.fround((image.data[p * 3 + from] as number) / 255) - mean) / std;
    }
  }
  return { data, shape: [1, 3, image.height, image.width] };
}

export function preprocess(image: RgbImage, preset: PreprocessPreset, size = preset.size): FloatArray {
  return normalise(resizeLinearUint8(image, size, size), preset);
}

/** A black pixel's value in the input, per input channel: (0 - mean) / std in the preset's channel order. */
export function blackPixel(preset: PreprocessPreset): number[] {
  return [0, 1, 2].map((c) => {
    const from = preset.bgr ? 2 - c : c;
    return -Math.fround(preset.mean[from] as number) / Math.fround(preset.std[from] as number);
  });
}
