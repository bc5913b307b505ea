import type { GradientSession } from '../engine/gradient-session.js';
import { bilinearTaps, horizontal, resizeBicubic, vertical } from '../engine/resize.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { lapackSign } from '../linalg/lapack-sign.js';
import { type CamerasResult, checkClass, type MethodName, probabilityOf, type SaliencyMap, topOne } from './cameras.js';

/** The single-scale CAM methods, as pytorch-grad-cam defines them. */
export const CAM_METHODS = [
  'gradcam',
  'gradcampp',
  'hirescam',
  'xgradcam',
  'layercam',
  'gradcam_elementwise',
  'normgrad',
  'eigencam',
] as const;
export type CamMethod = (typeof CAM_METHODS)[number];

/** sum_c weight_c * A_c over one image's `[C, H, W]` activations. */
export function weightedChannels(weights: ArrayLike<number>, activation: Float32Array, channels: number, plane: number): Float64Array {
  const cam = new Float64Array(plane);
  for (let c = 0; c < channels; c++) {
    const w = weights[c] as number;
    for (let p = 0; p < plane; p++) cam[p] = (cam[p] as number) + w * (activation[c * plane + p] as number);
  }
  return cam;
}

/** The one pass a single-scale layer method starts from: the target's activation and gradient and the class. */
export async function layerPass(session: GradientSession, input: FloatArray, method: string, classIndex: number | null) {
  if (classIndex !== null) checkClass(classIndex, session.classCount);
  const [, , height, width] = input.shape as [number, number, number, number];
  if (height !== width) throw new CamerasError(`${method} needs a square input; got ${height} x ${width}`);
  const pass = await session.run(input, classIndex);
  const target = pass.targets[0];
  if (!target?.activation) throw new CamerasError(`${method} needs an intermediate layer as target, not the input`);
  const [, channels, h, w] = target.activation.shape as [number, number, number, number];
  const top = topOne(pass.logits.data);
  return {
    activation: target.activation,
    gradient: target.gradient,
    logits: pass.logits.data,
    channels,
    h,
    w,
    size: height,
    top,
    cls: classIndex ?? top.index,
  };
}

/** The result of a method computed at one size for class `cls`. */
export function singleScaleResult(
  saliency: SaliencyMap,
  method: MethodName,
  cls: number,
  logits: Float32Array,
  size: number,
): CamerasResult {
  return {
    ...saliency,
    method,
    classIndex: cls,
    classPerResolution: { [size]: cls },
    probPerResolution: { [size]: topOne(logits).probability },
    usedResolutions: [size],
    classProbability: probabilityOf(logits, cls),
  };
}

/**
 * Which way EigenCAM's singular vector points: `numpy` as numpy.linalg.svd (LAPACK's dgesdd) returns it, so
 * maps equal pytorch-grad-cam's; `activation` so the projection correlates positively with the mean
 * activation map (the heat sits where the layer fires, independent of LAPACK's arithmetic).
 */
export type EigenSign = 'numpy' | 'activation';

/**
 * EigenCAM's projection (Muhammad and Yeasin 2020, as pytorch-grad-cam computes it): the activations as
 * `[positions, channels]`, centred per channel in float32 as numpy does, projected on their first right
 * singular vector (found by power iteration, then given the sign `orientation` asks for).
 */
export function eigenProjection(activation: Float32Array, channels: number, plane: number, orientation: EigenSign = 'numpy'): Float64Array {
  const x = new Float64Array(plane * channels);
  const meanMap = new Float64Array(plane);
  // pytorch-grad-cam zeroes NaN activations first.
  const value = (c: number, p: number) => {
    const v = activation[c * plane + p] as number;
    return Number.isNaN(v) ? 0 : v;
  };
  for (let c = 0; c < channels; c++) {
    let mean = 0;
    for (let p = 0; p < plane; p++) mean += value(c, p);
    mean = Math.fround(mean / plane);
    for (let p = 0; p < plane; p++) {
      x[p * channels + c] = Math.fround(value(c, p) - mean);
      meanMap[p] = (meanMap[p] as number) + value(c, p) / channels;
    }
  }
  const project = (v: Float64Array) => {
    const u = new Float64Array(plane);
    for (let p = 0; p < plane; p++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += (x[p * channels + c] as number) * (v[c] as number);
      u[p] = s;
    }
    return u;
  };
  let v = Float64Array.from({ length: channels }, (_, i) => Math.sin(i + 1));
  for (let iteration = 0; iteration < 300; iteration++) {
    const u = project(v);
    const next = new Float64Array(channels);
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < channels; c++) next[c] = (next[c] as number) + (x[p * channels + c] as number) * (u[p] as number);
    const norm = Math.hypot(...next) || 1;
    const previous = v;
    v = next.map((t) => t / norm);
    let change = 0;
    for (let c = 0; c < channels; c++) change = Math.max(change, Math.abs((v[c] as number) - (previous[c] as number)));
    if (change < 1e-12) break;
  }
  const projection = project(v);
  if (orientation === 'numpy') {
    let norm = 0;
    for (const t of projection) norm = Math.hypot(norm, t);
    if (norm === 0) return projection;
    const unit = projection.map((t) => t / norm);
    return lapackSign(x, plane, channels, unit) === 1 ? projection : projection.map((t) => -t);
  }
  let correlation = 0;
  for (let p = 0; p < plane; p++) correlation += (projection[p] as number) * (meanMap[p] as number);
  return correlation < 0 ? projection.map((t) => -t) : projection;
}

/**
 * The raw map of a CAM method from one image's activations A and gradients G (`[C, H, W]`), before
 * ReLU and scaling: per channel weights times activations, summed over channels, or element-wise forms.
 */
export function camImage(
  method: CamMethod,
  activation: Float32Array,
  gradient: Float32Array,
  channels: number,
  plane: number,
  eigenSign: EigenSign = 'numpy',
): Float64Array {
  let cam: Float64Array = new Float64Array(plane);
  const channelWeighted = (weight: (c: number) => number) => {
    cam = weightedChannels(
      Float64Array.from({ length: channels }, (_, c) => weight(c)),
      activation,
      channels,
      plane,
    );
  };
  const sum = (data: Float32Array, c: number, f: (v: number, p: number) => number = (v) => v) => {
    let s = 0;
    for (let p = 0; p < plane; p++) s += f(data[c * plane + p] as number, p);
    return s;
  };
  switch (method) {
    case 'gradcam':
      // Weights: the gradients' spatial mean.
      channelWeighted((c) => sum(gradient, c) / plane);
      break;
    case 'xgradcam':
      // Weights: sum(G * A) / (sum(A) + 1e-7), Fu et al. 2020.
      channelWeighted((c) => sum(gradient, c, (g, p) => g * (activation[c * plane + p] as number)) / (sum(activation, c) + 1e-7));
      break;
    case 'gradcampp':
      // Grad-CAM++ (Chattopadhay et al.) with exponential-free alphas: G^2 / (2 G^2 + sum(A) G^3 + 1e-6), zero where G is zero.
      channelWeighted((c) => {
        const total = sum(activation, c);
        return sum(gradient, c, (g) => {
          if (g === 0) return 0;
          const g2 = g * g;
          const alpha = g2 / (2 * g2 + total * g2 * g + 1e-6);
          return Math.max(g, 0) * alpha;
        });
      });
      break;
    case 'eigencam':
      return eigenProjection(activation, channels, plane, eigenSign);
    case 'normgrad':
      // NormGrad (Rebuffi et al. 2020), single layer: |A_p| |G_p|, the norm of the weight gradient a 1x1
      // convolution at position p would receive.
      for (let p = 0; p < plane; p++) {
        let a2 = 0;
        let g2 = 0;
        for (let c = 0; c < channels; c++) {
          a2 += (activation[c * plane + p] as number) ** 2;
          g2 += (gradient[c * plane + p] as number) ** 2;
        }
        cam[p] = Math.sqrt(a2 * g2);
      }
      break;
    default:
      for (let c = 0; c < channels; c++) {
        for (let p = 0; p < plane; p++) {
          const a = activation[c * plane + p] as number;
          const g = gradient[c * plane + p] as number;
          const v = method === 'hirescam' ? g * a : method === 'layercam' ? Math.max(g, 0) * a : Math.max(g * a, 0);
          cam[p] = (cam[p] as number) + v;
        }
      }
  }
  return cam;
}

/** pytorch-grad-cam's scaling: minus the minimum, over (1e-7 + the maximum). */
function scale(values: Float64Array | Float32Array): Float32Array {
  let min = Number.POSITIVE_INFINITY;
  for (const v of values) if (v < min) min = v;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v - min > max) max = v - min;
  return Float32Array.from(values, (v) => (v - min) / (1e-7 + max));
}

/** How a CAM method's raw map becomes the picture: pytorch-grad-cam's order (default), or resized first. */
export type CamPostprocess = 'pytorch-grad-cam' | 'resize-first';

/**
 * ReLU, scale, bilinear resize (half-pixel, as cv2.resize) to `size`, scale again: the order
 * pytorch-grad-cam uses, so maps compare with its outputs. `resize-first` resizes the raw map, then
 * applies ReLU and min-max, as CAMERAS does: the zero level is placed before interpolation blurs it.
 */
export function postprocessCam(
  cam: Float64Array,
  height: number,
  width: number,
  size: number,
  mode: CamPostprocess = 'pytorch-grad-cam',
): SaliencyMap {
  if (mode === 'resize-first') {
    const scratch = new Float64Array(height * size);
    const resized = new Float64Array(size * size);
    horizontal(Float32Array.from(cam), 0, height, width, bilinearTaps(width, size), size, scratch);
    vertical(scratch, bilinearTaps(height, size), size, size, resized, 0, 1, false);
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let p = 0; p < resized.length; p++) {
      const v = Math.max(0, resized[p] as number);
      resized[p] = v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const empty = !(max > min);
    return {
      map: empty ? new Float32Array(resized.length) : Float32Array.from(resized, (v) => (v - min) / (max - min)),
      width: size,
      height: size,
      empty,
    };
  }
  for (let p = 0; p < cam.length; p++) cam[p] = Math.max(0, cam[p] as number);
  let max = 0;
  for (const v of cam) if (v > max) max = v;
  const scaled = scale(cam);
  const scratch = new Float64Array(height * size);
  const resized = new Float64Array(size * size);
  horizontal(scaled, 0, height, width, bilinearTaps(width, size), size, scratch);
  vertical(scratch, bilinearTaps(height, size), size, size, resized, 0, 1, false);
  return { map: scale(resized), width: size, height: size, empty: !(max > 0) };
}

/**
 * A CAM method on one image at its own size: one forward and backward pass. With `resolutions`, the
 * multi-scale variant (gradient CAM methods only): the raw map of each scale, on the bicubic-resized input,
 * resized to the first resolution and averaged before the post-processing, CAMERAS' recipe applied to maps.
 */
export async function explainCam(
  session: GradientSession,
  input: FloatArray,
  method: CamMethod,
  classIndex: number | null,
  options: { postprocess?: CamPostprocess; resolutions?: readonly number[]; eigenSign?: EigenSign } = {},
): Promise<CamerasResult> {
  if (classIndex !== null) checkClass(classIndex, session.classCount);
  const [, inChannels, height, width] = input.shape as [number, number, number, number];
  if (height !== width) throw new CamerasError(`${method} needs a square input; got ${height} x ${width}`);
  const resolutions = options.resolutions ?? [height];
  const size = resolutions[0] as number;
  const sum = new Float64Array(size * size);
  let first: { cls: number; top: { index: number; probability: number }; probability: number } | undefined;
  const classPerResolution: Record<string, number> = {};
  const probPerResolution: Record<string, number> = {};
  let h = 0;
  let w = 0;
  let single: Float64Array | undefined;
  for (const r of resolutions) {
    const scaled = r === height ? input : { data: resizeBicubic(input.data, input.shape, r, r), shape: [1, inChannels, r, r] };
    const pass = await session.run(scaled, classIndex ?? first?.cls ?? null);
    const target = pass.targets[0];
    if (!target?.activation) throw new CamerasError(`${method} needs an intermediate layer as target, not the input`);
    const [, channels, th, tw] = target.activation.shape as [number, number, number, number];
    const top = topOne(pass.logits.data);
    const cls = classIndex ?? first?.cls ?? top.index;
    first ??= { cls, top, probability: probabilityOf(pass.logits.data, cls) };
    classPerResolution[r] = cls;
    probPerResolution[r] = top.probability;
    // Across scales EigenCAM's sign must agree, which numpy's arbitrary one does not promise.
    const eigenSign = options.eigenSign ?? (resolutions.length > 1 ? 'activation' : 'numpy');
    const raw = camImage(method, target.activation.data, target.gradient.data, channels, th * tw, eigenSign);
    if (resolutions.length === 1) {
      single = raw;
      [h, w] = [th, tw];
      break;
    }
    // The raw map at the first resolution's size, averaged over scales.
    const scratch = new Float64Array(th * size);
    horizontal(Float32Array.from(raw), 0, th, tw, bilinearTaps(tw, size), size, scratch);
    vertical(scratch, bilinearTaps(th, size), size, size, sum, 0, 1 / resolutions.length, r !== resolutions[0]);
  }
  const saliency = single
    ? postprocessCam(single, h, w, size, options.postprocess)
    : postprocessCam(sum, size, size, size, options.postprocess);
  const chosen = first as { cls: number; top: { index: number; probability: number }; probability: number };
  return {
    ...saliency,
    method,
    classIndex: chosen.cls,
    classPerResolution,
    probPerResolution,
    usedResolutions: [...resolutions],
    classProbability: chosen.probability,
  };
}
