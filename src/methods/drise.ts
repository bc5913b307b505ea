import {
  boxIou,
  type Detection,
  type DetectionSpec,
  detect,
  detectionClasses,
  isDetectionTarget,
  type NmsOptions,
  type Prediction,
  scaleBox,
} from '../engine/detections.js';
import { minMax } from '../engine/postprocess.js';
import type { InputSize } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { mulberry32 } from '../random.js';
import { imageSize, plane, type SaliencyMethod } from './method.js';

/** Masked images per ONNX Runtime call. */
const BATCH = 16;

/** Masks given by the caller (the reference's, to compare): `count` planes of `height x width`, 1 kept, 0 occluded. */
export interface MaskSet {
  data: ArrayLike<number>;
  count: number;
  height: number;
  width: number;
}

export interface DriseOptions {
  /** Random masks (default 1000; the paper uses 5000). */
  samples?: number;
  /** The side of the random grid each mask is drawn on (default 16, the reference's). */
  maskGrid?: number;
  /** Seed of the masks: the same seed gives the same map. */
  seed?: number;
  /** Masks to use instead of random ones (the reference's, to compare). */
  givenMasks?: MaskSet;
}

/**
 * One D-RISE mask as microsoft/vision-explanation-methods draws it: a `grid x grid` of coin flips (`cells`, row-major,
 * 1 kept), resized (nearest: floor of the scaled position) to (H + pad) x (W + pad), pad = int(max(H, W) / grid), and
 * cropped to H x W from (`top`, `left`), each offset in 0..pad.
 */
export function driseMaskFrom(
  cells: ArrayLike<number>,
  top: number,
  left: number,
  grid: number,
  height: number,
  width: number,
): Uint8Array {
  const pad = Math.trunc(Math.max(height / grid, width / grid));
  const mask = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) {
    const gy = Math.min(grid - 1, Math.floor(((y + top) * grid) / (height + pad)));
    for (let x = 0; x < width; x++)
      mask[y * width + x] = cells[gy * grid + Math.min(grid - 1, Math.floor(((x + left) * grid) / (width + pad)))] ? 1 : 0;
  }
  return mask;
}

/** A random D-RISE mask (`driseMaskFrom`) from a seeded generator of 32-bit integers. */
export function driseMask(next: () => number, grid: number, height: number, width: number): Uint8Array {
  const pad = Math.trunc(Math.max(height / grid, width / grid));
  const cells = Uint8Array.from({ length: grid * grid }, () => next() >>> 31);
  return driseMaskFrom(cells, next() % (pad + 1), next() % (pad + 1), grid, height, width);
}

/**
 * The reference's affinity of a detection to the target: IoU x objectness_t x objectness_d x cosine of the class
 * score vectors (`compute_affinity_matrix`); a masked image's affinity is the highest over its detections (0 if none).
 */
export function affinity(target: Prediction, detections: readonly Prediction[]): number {
  let best = 0;
  const norm = (v: Float32Array) => Math.hypot(...v);
  const targetNorm = norm(target.classScores);
  for (const d of detections) {
    let dot = 0;
    for (let k = 0; k < d.classScores.length; k++) dot += (target.classScores[k] as number) * (d.classScores[k] as number);
    const value = boxIou(target.box, d.box) * target.objectness * d.objectness * (dot / (targetNorm * norm(d.classScores)));
    best = Math.max(best, value);
  }
  return best;
}

/** The clean image's detection that stands for the box: same label, highest IoU; else the box itself, one-hot. */
function targetDetection(detections: readonly Detection[], spec: DetectionSpec, classes: number, input: InputSize): Prediction {
  const box = scaleBox(spec.box, input.width / spec.size.width, input.height / spec.size.height);
  let found: Detection | undefined;
  let bestIou = 0;
  for (const d of detections) {
    const iou = boxIou(d.box, box);
    if (d.label === spec.label && iou > bestIou) {
      bestIou = iou;
      found = d;
    }
  }
  if (found && bestIou >= 0.5) return found;
  const classScores = new Float32Array(classes);
  classScores[spec.label] = 1;
  return { index: -1, box, objectness: 1, classScores };
}

/**
 * D-RISE (Petsiuk et al., CVPR 2021) as microsoft/vision-explanation-methods computes it: N random masks M_i
 * occlude the image (occluded pixels black), each masked image's detections give the affinity s_i of the best one to
 * the target detection (IoU x objectness x class cosine), and S = sum_i s_i M_i - mean(s) sum_i M_i, scaled to
 * [0, 1] by its minimum and maximum. Forward passes only: any detector exported before NMS (its NMS runs here).
 */
export const drise: SaliencyMethod<DriseOptions> = {
  name: 'drise',
  summary: "D-RISE: random masks weighted by the masked detections' affinity to the target box (microsoft/vision-explanation-methods)",
  needs: ['masked-forward'],
  options: ['samples', 'maskGrid', 'seed', 'givenMasks'],
  async compute(context, input, options) {
    const target = options.target;
    if (!isDetectionTarget(target))
      throw new CamerasError('drise explains a detection: give a box target (--target box:x1,y1,x2,y2[:label] or --detection <i>)');
    const spec = target.detection;
    const nms: NmsOptions = { scoreThreshold: 0.05, ...spec.nms };
    const { height, width } = imageSize(input);
    const channels = input.shape[1] as number;
    const positions = height * width;
    const [clean] = await context.forward([input]);
    const classes = detectionClasses((clean as FloatArray).shape, spec.layout);
    const reference = targetDetection(detect(clean as FloatArray, spec.layout, nms), spec, classes, { width, height });
    const given = options.givenMasks;
    if (given && (given.height !== height || given.width !== width || given.data.length !== given.count * positions))
      throw new CamerasError(`the given masks are ${given.count} x ${given.height} x ${given.width}; the input is ${height} x ${width}`);
    const count = given?.count ?? options.samples ?? 1000;
    if (!Number.isInteger(count) || count < 1) throw new CamerasError(`drise needs at least 1 mask; got ${count}`);
    const grid = options.maskGrid ?? 16;
    if (!Number.isInteger(grid) || grid < 1 || grid > Math.min(height, width))
      throw new CamerasError(`the mask grid ${grid} must be an integer from 1 to the input's side (${Math.min(height, width)})`);
    const next = mulberry32(options.seed ?? 0);
    const black = context.blackPixel;
    const weighted = new Float64Array(positions);
    const covered = new Float64Array(positions);
    let total = 0;
    for (let m0 = 0; m0 < count; m0 += BATCH) {
      const masks: ArrayLike<number>[] = [];
      const masked: FloatArray[] = [];
      for (let m = m0; m < Math.min(m0 + BATCH, count); m++) {
        const mask = given
          ? (Array.prototype.slice.call(given.data, m * positions, (m + 1) * positions) as number[])
          : driseMask(next, grid, height, width);
        const data = new Float32Array(channels * positions);
        for (let c = 0; c < channels; c++) {
          const fill = black[c] ?? 0;
          for (let p = 0; p < positions; p++)
            data[c * positions + p] = (mask[p] as number) !== 0 ? (input.data[c * positions + p] as number) : fill;
        }
        masks.push(mask);
        masked.push({ data, shape: input.shape });
      }
      const outputs = await context.forward(masked);
      outputs.forEach((output, k) => {
        const score = affinity(reference, detect(output, spec.layout, nms));
        const mask = masks[k] as ArrayLike<number>;
        total += score;
        for (let p = 0; p < positions; p++) {
          const v = mask[p] as number;
          weighted[p] = (weighted[p] as number) + score * v;
          covered[p] = (covered[p] as number) + v;
        }
      });
      options.onProgress?.(Math.min(m0 + BATCH, count), count);
    }
    const mean = total / count;
    const saliency = weighted.map((w, p) => w - mean * (covered[p] as number));
    return { raw: plane(saliency, height, width), height, width, usedResolutions: [height] };
  },
  postprocess: (raw, height, width) => minMax(raw.data, width, height),
};
