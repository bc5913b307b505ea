import type { GradientSession } from '../engine/gradient-session.js';
import { bilinearTaps, horizontal, resizeBicubic, type Taps, vertical } from '../engine/resize.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import type { CamMethod, CamPostprocess, EigenSign } from './cam.js';
import type { InputGradientMethod } from './input-gradient.js';

/** The paper's default scales: 224, 324, ..., 924 (`range(224, 1000, 100)`). */
export const DEFAULT_RESOLUTIONS: readonly number[] = [224, 324, 424, 524, 624, 724, 824, 924];

export interface CamerasOptions {
  /** Class to explain; omitted or null: the top-1 class at the first resolution. */
  classIndex?: number | null;
  /** Square input sizes; the first is also the size of the map. */
  resolutions?: readonly number[];
  /** Also return the map of each fused resolution alone (`scaleMaps`), to show what each scale adds. */
  perScale?: boolean;
  /** Called after each resolution's pass (for progress bars). */
  onScale?: (resolution: number) => void;
  /**
   * `cameras` (default), or a single-scale CAM method computed as pytorch-grad-cam does (ReLU, scale,
   * bilinear resize to the input's size, scale): gradcam, gradcampp, hirescam, xgradcam, layercam,
   * gradcam_elementwise. Those ignore `resolutions`.
   */
  method?: MethodName;
  /** SmoothGrad samples or Integrated Gradients steps; SmoothGrad's noise seed. */
  samples?: number;
  seed?: number;
  /** CAM methods: pytorch-grad-cam's post-processing (default) or resize first; see methods/cam.ts. */
  postprocess?: CamPostprocess;
  /** CAM methods: run at every resolution (the multi-scale variant) instead of the input's size alone. */
  multiScale?: boolean;
  /**
   * EigenCAM: the singular vector's sign as numpy gives it (the default at one scale: maps equal
   * pytorch-grad-cam's) or along the mean activation (the default with `multiScale`, where scales must agree).
   */
  eigenSign?: EigenSign;
}

export interface SaliencyMap {
  /** Row-major `height x width` values in [0, 1]. */
  map: Float32Array;
  width: number;
  height: number;
  /** True when the fused map is zero everywhere (nothing survived the ReLU): `map` is then all zero. */
  empty: boolean;
}

/** Every method behind `Explainer.explain`. */
export type MethodName = 'cameras' | CamMethod | InputGradientMethod | 'scorecam' | 'ablationcam';

export interface CamerasResult extends SaliencyMap {
  method: MethodName;
  /** The class explained. */
  classIndex: number;
  /** The class used at each resolution (the given class, or that scale's top-1). */
  classPerResolution: Record<string, number>;
  /** The top-1 softmax probability at each resolution, as the reference reports it. */
  probPerResolution: Record<string, number>;
  /** Resolutions whose activations and gradients were fused (the class-consistency rule). */
  usedResolutions: number[];
  /** Softmax probability of the explained class at the first resolution. */
  classProbability: number;
  /** With `perScale`: the map of each used resolution on its own. */
  scaleMaps?: { resolution: number; map: SaliencyMap }[];
}

/** Softmax probability of class `index` in one row of logits. */
export function probabilityOf(logits: Float32Array, index: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  let total = 0;
  for (const v of logits) total += Math.exp(v - max);
  return Math.exp((logits[index] as number) - max) / total;
}

/** Top-1 index and softmax probability of one row of logits. */
export function topOne(logits: Float32Array): { index: number; probability: number } {
  let index = 0;
  for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[index] as number)) index = i;
  const max = logits[index] as number;
  let total = 0;
  for (const v of logits) total += Math.exp(v - max);
  return { index, probability: 1 / total };
}

export function validateResolutions(resolutions: readonly number[]): void {
  if (resolutions.length === 0)
    throw new CamerasError('the resolution list is empty; give at least one size, e.g. --resolutions 224,324,424');
  for (const r of resolutions) {
    if (!Number.isInteger(r) || r < 8 || r > 4096) {
      throw new CamerasError(`resolution ${r} is not an integer between 8 and 4096; e.g. --resolutions 224,324,424`);
    }
  }
}

export function validateImageTensor(input: FloatArray, channels: number | undefined): void {
  const [n, c, h, w] = input.shape;
  if (input.shape.length !== 4 || n !== 1 || (channels !== undefined && channels > 0 && c !== channels) || !h || !w) {
    throw new CamerasError(
      `input tensor has shape [${input.shape.join(', ')}]; expected [1, ${channels && channels > 0 ? channels : 'C'}, H, W] float32 (NCHW, one image)`,
    );
  }
  if (input.data.length !== n * (c as number) * h * w) throw new CamerasError('input tensor data does not match its shape');
}

interface Scale {
  activation: FloatArray;
  gradient: FloatArray;
}

/** Fuses kept scales into a map; `fuseScales` is the plain version, `FusionEngine` the fast one. */
export type Fuse = (scales: Scale[], size: number) => Promise<SaliencyMap>;

/**
 * Fuses the kept scales the way the paper states it: activations and gradients are each resized
 * bilinearly to `size x size` and averaged separately, and the map is ReLU(sum over channels of mean
 * activation x mean gradient), min-max normalised. Plain JS, channel by channel (no `C x size x size`
 * tensor is held): the readable reference that the fast `FusionEngine` is tested against.
 */
export function fuseScales(scales: Scale[], size: number): SaliencyMap {
  const channels = scales[0]?.activation.shape[1] as number;
  const plane = size * size;
  const geometry = scales.map(({ activation }) => {
    const [, c, h, w] = activation.shape as [number, number, number, number];
    if (c !== channels) throw new Error('scales disagree on channel count');
    return { h, w, rows: bilinearTaps(h, size), cols: bilinearTaps(w, size) };
  });
  const maxH = Math.max(...geometry.map((g) => g.h));
  const scratch = new Float64Array(maxH * size);
  const meanA = new Float64Array(plane);
  const meanG = new Float64Array(plane);
  const fused = new Float64Array(plane);
  const addResized = (
    source: Float32Array,
    c: number,
    g: { h: number; w: number; rows: Taps; cols: Taps },
    into: Float64Array,
    first: boolean,
  ) => {
    horizontal(source, c * g.h * g.w, g.h, g.w, g.cols, size, scratch);
    vertical(scratch, g.rows, size, size, into, 0, 1, !first);
  };
  for (let c = 0; c < channels; c++) {
    scales.forEach((scale, s) => {
      const g = geometry[s] as (typeof geometry)[number];
      addResized(scale.activation.data, c, g, meanA, s === 0);
      addResized(scale.gradient.data, c, g, meanG, s === 0);
    });
    for (let p = 0; p < plane; p++) fused[p] += (meanA[p] as number) * (meanG[p] as number);
  }
  return normaliseFused(fused, scales.length, size);
}

/**
 * From the fused sums over `count` scales to the map: divide by count^2 (the two means), ReLU, min-max.
 * The reference divides by zero when nothing survives the ReLU and returns NaN; we return zeros and
 * report the map as empty.
 */
export function normaliseFused(fused: Float64Array, count: number, size: number): SaliencyMap {
  const norm = 1 / (count * count);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  const values = new Float64Array(fused.length);
  for (let p = 0; p < fused.length; p++) {
    const v = Math.max(0, (fused[p] as number) * norm);
    values[p] = v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const map = new Float32Array(fused.length);
  const empty = !(max > min);
  if (!empty) for (let p = 0; p < fused.length; p++) map[p] = ((values[p] as number) - min) / (max - min);
  return { map, width: size, height: size, empty };
}

/** Pixels per batched ONNX Runtime call: one image at 924 px, 23 at 224 px (ResNet-50 peaks under 1.5 GiB). */
export const BATCH_PIXELS = 924 * 924 * 1.4;

/** Images explained together: each holds its activations and gradients at every scale until fused. */
export const IMAGE_GROUP = 8;

/**
 * CAMERAS (Jalwana et al., CVPR 2021) as the authors' CAMERAS.py computes it: one forward and backward
 * pass per resolution on the bicubic-resized normalised input, the class-consistency rule, then fusion.
 */
export async function explainCameras(
  session: GradientSession,
  input: FloatArray,
  options: CamerasOptions = {},
  fuse: Fuse = async (scales, size) => fuseScales(scales, size),
): Promise<CamerasResult> {
  return (await explainCamerasBatch(session, [input], options, fuse))[0] as CamerasResult;
}

/**
 * CAMERAS for several images: at each resolution the images are stacked into batches of at most
 * `batchPixels` pixels (where the model takes a batch), so small scales run many images per call.
 * Each image's map is the one `explainCameras` gives it alone.
 */
export async function explainCamerasBatch(
  session: GradientSession,
  inputs: FloatArray[],
  options: CamerasOptions = {},
  fuse: Fuse = async (scales, size) => fuseScales(scales, size),
  batchPixels = BATCH_PIXELS,
): Promise<CamerasResult[]> {
  if (inputs.length > IMAGE_GROUP) {
    const results: CamerasResult[] = [];
    for (let start = 0; start < inputs.length; start += IMAGE_GROUP) {
      results.push(...(await explainCamerasBatch(session, inputs.slice(start, start + IMAGE_GROUP), options, fuse, batchPixels)));
    }
    return results;
  }
  const resolutions = options.resolutions ?? DEFAULT_RESOLUTIONS;
  validateResolutions(resolutions);
  const requested = options.classIndex ?? null;
  const classCount = session.classCount;
  if (requested !== null) checkClass(requested, classCount);
  const states = inputs.map(() => ({
    classPerResolution: {} as Record<string, number>,
    probPerResolution: {} as Record<string, number>,
    used: [] as number[],
    kept: [] as Scale[],
    firstClass: -1,
    classProbability: 0,
  }));
  for (const [i, r] of resolutions.entries()) {
    const perCall = Math.max(1, Math.floor(batchPixels / (r * r)));
    for (let start = 0; start < inputs.length; start += perCall) {
      const scaled = inputs.slice(start, start + perCall).map((input) => {
        const [, channels, height, width] = input.shape as [number, number, number, number];
        return height === r && width === r ? input : { data: resizeBicubic(input.data, input.shape, r, r), shape: [1, channels, r, r] };
      });
      const passes = await session.runEach(scaled, requested);
      options.onScale?.(r);
      passes.forEach((pass, k) => {
        const state = states[start + k] as (typeof states)[number];
        const top = topOne(pass.logits.data);
        if (requested !== null && classCount === undefined) checkClass(requested, pass.logits.data.length);
        const cls = requested ?? top.index;
        state.classPerResolution[r] = cls;
        state.probPerResolution[r] = top.probability;
        if (i === 0) {
          state.firstClass = cls;
          state.classProbability = probabilityOf(pass.logits.data, cls);
        }
        if (cls === state.firstClass || cls === requested) {
          const target = pass.targets[0];
          if (!target?.activation) throw new CamerasError('CAMERAS needs an intermediate layer as target, not the input');
          state.kept.push({ activation: target.activation, gradient: target.gradient });
          state.used.push(r);
        }
      });
    }
  }
  const results: CamerasResult[] = [];
  for (const state of states) {
    const size = resolutions[0] as number;
    const fused = await fuse(state.kept, size);
    const scaleMaps = options.perScale
      ? await Promise.all(state.kept.map(async (scale, k) => ({ resolution: state.used[k] as number, map: await fuse([scale], size) })))
      : undefined;
    results.push({
      method: 'cameras',
      ...fused,
      classIndex: requested ?? state.firstClass,
      classPerResolution: state.classPerResolution,
      probPerResolution: state.probPerResolution,
      usedResolutions: state.used,
      classProbability: state.classProbability,
      ...(scaleMaps ? { scaleMaps } : {}),
    });
  }
  return results;
}

export function checkClass(classIndex: number, classCount: number | undefined): void {
  if (!Number.isInteger(classIndex) || classIndex < 0 || (classCount !== undefined && classIndex >= classCount)) {
    const range = classCount !== undefined ? `0-${classCount - 1}` : 'a non-negative integer';
    throw new CamerasError(`class ${classIndex} is out of range: the model has ${classCount ?? 'an unknown number of'} classes (${range})`);
  }
}
