import { type CamPostprocess, postprocessCam, type RawMap } from '../engine/postprocess.js';
import { resizeInput, resizePlaneBilinear } from '../engine/resize.js';
import { ClassConsistency, validateResolutions } from '../engine/scales.js';
import { frozenRegion, type Target } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import {
  type CommonOptions,
  imageSize,
  type MethodContext,
  type MethodOutput,
  plane,
  type SaliencyMethod,
  type ScaleOptions,
} from './method.js';

/** One image's activation A and gradient G at the target layer, `[C, H, W]` row-major. */
export interface LayerTensors {
  activation: Float32Array;
  gradient: Float32Array;
  channels: number;
  /** Positions per channel: H x W. */
  plane: number;
}

/** Options of the CAM family. */
export interface CamOptions extends ScaleOptions {
  /** pytorch-grad-cam's post-processing (default, maps compare with its outputs) or resize first. */
  postprocess?: CamPostprocess;
  /** Run at every resolution (`resolutions`) and average the raw maps (CAMERAS' multi-scale recipe applied to maps). */
  multiScale?: boolean;
}

/** A CAM method is its formula: the raw map over positions from one scale's A and G. */
export interface CamFormula<O extends object = object> {
  name: string;
  summary: string;
  /** The method's options beyond the CAM family's. */
  options?: readonly (keyof O & string)[];
  map(layer: LayerTensors, options: O & { multiScale?: boolean }): Float64Array | Promise<Float64Array>;
}

/** sum_k w_k A_k over one image's `[C, H, W]` activations. */
export function weightedChannels(weights: ArrayLike<number>, activation: Float32Array, channels: number, positions: number): Float64Array {
  const cam = new Float64Array(positions);
  for (let c = 0; c < channels; c++) {
    const w = weights[c] as number;
    for (let p = 0; p < positions; p++) cam[p] = (cam[p] as number) + w * (activation[c * positions + p] as number);
  }
  return cam;
}

/** Per channel: sum over positions of f(value, position). */
export function channelSums(
  data: Float32Array,
  channels: number,
  positions: number,
  f: (v: number, p: number, c: number) => number = (v) => v,
) {
  const sums = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let s = 0;
    for (let p = 0; p < positions; p++) s += f(data[c * positions + p] as number, p, c);
    sums[c] = s;
  }
  return sums;
}

/** sum over channels of f(A, G) at each position (the element-wise CAMs). */
export function elementwise(layer: LayerTensors, f: (a: number, g: number) => number): Float64Array {
  const { activation, gradient, channels, plane: positions } = layer;
  const cam = new Float64Array(positions);
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < positions; p++)
      cam[p] = (cam[p] as number) + f(activation[c * positions + p] as number, gradient[c * positions + p] as number);
  }
  return cam;
}

/** The target layer's activation and gradient of one pass, or a clear error when the target is the input. */
export function layerTensors(pass: { targets: { activation?: FloatArray; gradient: FloatArray; native?: FloatArray }[] }, method: string) {
  const target = pass.targets[0];
  if (!target?.activation) throw new CamerasError(`${method} needs an intermediate layer as target, not the input`);
  if (target.activation.shape.length !== 4)
    throw new CamerasError(
      `the target layer's output has shape [${target.activation.shape.join(', ')}], not a spatial map [N, C, H, W]; choose a convolutional layer ('cameras layers' lists them) or give its layer view`,
    );
  const [, channels, h, w] = target.activation.shape as [number, number, number, number];
  return { activation: target.activation, gradient: target.gradient, native: target.native ?? target.activation, channels, h, w };
}

/** What a method computed at the input's own size (one scale) reports about classes and sizes. */
export function oneScaleFacts(input: FloatArray, output: FloatArray, classIndex: number | null, target?: Target) {
  const { height, width } = imageSize(input);
  const rule = new ClassConsistency(classIndex, target);
  rule.keep(height, output);
  return { height, width, ...rule.facts() };
}

/** The output of a method computed at the input's own size (one scale). */
export function singleScaleOutput(
  raw: RawMap,
  input: FloatArray,
  output: FloatArray,
  classIndex: number | null,
  target?: Target,
): MethodOutput {
  return { raw, ...oneScaleFacts(input, output, classIndex, target) };
}

/**
 * The one layer pass Score-CAM and Ablation-CAM start from: A, the output and the class, reported as one scale.
 * `cls` is the explained class (the given one, or the top-1 of a classifier; 0 where the output has no class);
 * `target` is what their perturbed copies are scored by (a predicted region frozen to this pass's prediction).
 */
export async function layerPassAt(context: MethodContext, input: FloatArray, options: CommonOptions, method: string) {
  const requested = options.classIndex ?? null;
  const pass = await context.layer.run(input, requested, options.target);
  const tensors = layerTensors(pass, method);
  const first = oneScaleFacts(input, pass.output, requested, options.target);
  return { ...tensors, output: pass.output, first, cls: first.classIndex ?? 0, target: frozenRegion(options.target, pass.output) };
}

/**
 * The CAM family's method around a formula, pytorch-grad-cam's BaseCAM: one forward and backward pass at the
 * input's size, the formula's raw map at the layer's size, post-processed to the input's size. With
 * `multiScale`, the raw map of each kept scale (bicubic-resized input; the class-consistency rule) is resized
 * bilinearly to the first resolution and averaged before post-processing.
 */
export function camMethod<O extends object = object>(formula: CamFormula<O>): SaliencyMethod<CamOptions & O> {
  const own: readonly string[] = formula.options ?? [];
  return {
    name: formula.name,
    summary: formula.summary,
    needs: ['layer-gradient'],
    options: ['postprocess', 'multiScale', 'resolutions', 'perScale', ...own] as (keyof (CamOptions & O) & string)[],
    async compute(context: MethodContext, input: FloatArray, options: CommonOptions & CamOptions & O): Promise<MethodOutput> {
      const requested = options.classIndex ?? null;
      if (!options.multiScale) {
        const given = (['resolutions', 'perScale'] as const).find((o) => options[o]);
        if (given) throw new CamerasError(`method '${formula.name}' takes '${given}' only with 'multiScale'`);
        const pass = await context.layer.run(input, requested, options.target);
        const { activation, gradient, channels, h, w } = layerTensors(pass, formula.name);
        const raw = await formula.map({ activation: activation.data, gradient: gradient.data, channels, plane: h * w }, options);
        options.onProgress?.(1, 1);
        return singleScaleOutput(plane(raw, h, w), input, pass.output, requested, options.target);
      }
      const resolutions = options.resolutions ?? context.resolutions;
      validateResolutions(resolutions);
      const size = resolutions[0] as number;
      const rule = new ClassConsistency(requested, options.target);
      const kept: { resolution: number; raw: Float64Array }[] = [];
      for (const [i, r] of resolutions.entries()) {
        const pass = await context.layer.run(resizeInput(input, r), requested, options.target);
        options.onProgress?.(i + 1, resolutions.length);
        if (!rule.keep(r, pass.output)) continue;
        const { activation, gradient, channels, h, w } = layerTensors(pass, formula.name);
        const map = await formula.map({ activation: activation.data, gradient: gradient.data, channels, plane: h * w }, options);
        if (resolutions.length === 1) {
          // One scale alone stays at the layer's size: the single-scale map, post-processed the same way.
          const scaleRaws = options.perScale ? [{ resolution: r, raw: plane(map, h, w) }] : undefined;
          return {
            ...singleScaleOutput(plane(map, h, w), resizeInput(input, r), pass.output, requested, options.target),
            ...(scaleRaws ? { scaleRaws } : {}),
          };
        }
        kept.push({ resolution: r, raw: resizePlaneBilinear(map, h, w, size, size) });
      }
      const sum = new Float64Array(size * size);
      for (const { raw } of kept) for (let p = 0; p < sum.length; p++) sum[p] = (sum[p] as number) + (raw[p] as number) / kept.length;
      return {
        raw: plane(sum, size, size),
        height: size,
        width: size,
        ...rule.facts(),
        ...(options.perScale ? { scaleRaws: kept.map(({ resolution, raw }) => ({ resolution, raw: plane(raw, size, size) })) } : {}),
      };
    },
    postprocess: (raw, height, width, options) => postprocessCam(raw, height, width, options.postprocess),
    classResolution: (input, options, resolutions) =>
      options.multiScale ? ((options.resolutions ?? resolutions)[0] as number) : imageSize(input).height,
  };
}
