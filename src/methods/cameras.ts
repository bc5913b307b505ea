import type { FusionScale } from '../engine/fusion.js';
import { minMax, type RawMap, relu, type SaliencyMap } from '../engine/postprocess.js';
import { bilinearTaps, horizontal, resizeInput, type Taps, vertical } from '../engine/resize.js';
import { ClassConsistency, validateResolutions } from '../engine/scales.js';
import type { FloatArray } from '../io/npy.js';
import { layerTensors } from './base-cam.js';
import { type CommonOptions, type MethodContext, type MethodOutput, plane, type SaliencyMethod, type ScaleOptions } from './method.js';

/** CAMERAS' options: its resolutions, and each fused resolution's map alone on request. */
export type CamerasMethodOptions = ScaleOptions;

/**
 * Fuses the kept scales the way the paper states it: activations and gradients are each resized
 * bilinearly to `size x size` and averaged separately, and the map is ReLU(sum over channels of mean
 * activation x mean gradient), min-max normalised. Plain JS, channel by channel (no `C x size x size`
 * tensor is held): the readable reference that the fast `FusionEngine` is tested against.
 */
export function fuseScales(scales: FusionScale[], size: number): SaliencyMap {
  return normaliseFused(fuseSumsReference(scales, size), scales.length, size);
}

/** sum over channels of (sum of resized A) x (sum of resized G), `size x size`: what `FusionEngine.fuseSums` computes. */
export function fuseSumsReference(scales: FusionScale[], size: number): Float64Array {
  const channels = scales[0]?.activation.shape[1] as number;
  const positions = size * size;
  const geometry = scales.map(({ activation }) => {
    const [, c, h, w] = activation.shape as [number, number, number, number];
    if (c !== channels) throw new Error('scales disagree on channel count');
    return { h, w, rows: bilinearTaps(h, size), cols: bilinearTaps(w, size) };
  });
  const maxH = Math.max(...geometry.map((g) => g.h));
  const scratch = new Float64Array(maxH * size);
  const meanA = new Float64Array(positions);
  const meanG = new Float64Array(positions);
  const fused = new Float64Array(positions);
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
    for (let p = 0; p < positions; p++) fused[p] += (meanA[p] as number) * (meanG[p] as number);
  }
  return fused;
}

/** The fused sums over `count` scales divided by count^2 (the two means): CAMERAS' raw map, before ReLU. */
export function fusedRaw(fused: Float64Array, count: number, size: number): RawMap {
  const norm = 1 / (count * count);
  return plane(
    fused.map((v) => v * norm),
    size,
    size,
  );
}

/**
 * From the fused sums over `count` scales to the map: divide by count^2, ReLU, min-max. The reference divides
 * by zero when nothing survives the ReLU and returns NaN; we return zeros and report the map as empty.
 */
export function normaliseFused(fused: Float64Array, count: number, size: number): SaliencyMap {
  return minMax(relu(fusedRaw(fused, count, size).data), size, size);
}

/** Pixels per batched ONNX Runtime call: one image at 924 px, 23 at 224 px (ResNet-50 peaks under 1.5 GiB). */
export const BATCH_PIXELS = 924 * 924 * 1.4;

/** Images explained together: each holds its activations and gradients at every scale until fused. */
export const IMAGE_GROUP = 8;

/**
 * The order scales run in: the first (every other scale's class is judged against it), then largest first, so
 * ONNX Runtime's arena grows once to the largest scale and the smaller ones reuse it (VGG-16: peak 1335 -> 1161 MB).
 */
export function runOrder(resolutions: readonly number[]): number[] {
  const rest = resolutions.map((_, i) => i).slice(1);
  return [0, ...rest.sort((a, b) => (resolutions[b] as number) - (resolutions[a] as number) || a - b)];
}

/**
 * CAMERAS for several images: at each resolution the images are stacked into batches of at most
 * `batchPixels` pixels (where the model takes a batch), so small scales run many images per call.
 * Each image's map is the one it gets alone.
 */
async function camerasBatch(
  context: MethodContext,
  inputs: FloatArray[],
  options: CommonOptions & CamerasMethodOptions,
  batchPixels: number,
  progress: { done: number; total: number },
): Promise<MethodOutput[]> {
  if (inputs.length > IMAGE_GROUP) {
    const results: MethodOutput[] = [];
    for (let start = 0; start < inputs.length; start += IMAGE_GROUP)
      results.push(...(await camerasBatch(context, inputs.slice(start, start + IMAGE_GROUP), options, batchPixels, progress)));
    return results;
  }
  const resolutions = options.resolutions ?? context.resolutions;
  validateResolutions(resolutions);
  const requested = options.classIndex ?? null;
  const states = inputs.map(() => ({
    rule: new ClassConsistency(requested, options.target),
    kept: [] as { at: number; scale: FusionScale }[],
  }));
  for (const at of runOrder(resolutions)) {
    const r = resolutions[at] as number;
    const perCall = Math.max(1, Math.floor(batchPixels / (r * r)));
    for (let start = 0; start < inputs.length; start += perCall) {
      const scaled = inputs.slice(start, start + perCall).map((input) => resizeInput(input, r));
      const passes = await context.layer.runEach(scaled, requested, options.target);
      passes.forEach((pass, k) => {
        const state = states[start + k] as (typeof states)[number];
        const { activation, gradient } = layerTensors(pass, 'CAMERAS');
        if (state.rule.keep(r, pass.output)) state.kept.push({ at, scale: { activation, gradient } });
      });
      progress.done += scaled.length;
      options.onProgress?.(progress.done, progress.total);
    }
  }
  const size = resolutions[0] as number;
  const results: MethodOutput[] = [];
  for (const state of states) {
    // Fused in the order given, whatever order they ran in.
    const kept = state.kept.sort((a, b) => a.at - b.at).map((k) => k.scale);
    const used = state.kept.map((k) => resolutions[k.at] as number);
    const raw = fusedRaw(await context.fuseSums(kept, size), kept.length, size);
    const scaleRaws = options.perScale
      ? await Promise.all(
          kept.map(async (scale, k) => ({
            resolution: used[k] as number,
            raw: fusedRaw(await context.fuseSums([scale], size), 1, size),
          })),
        )
      : undefined;
    results.push({
      raw,
      height: size,
      width: size,
      ...state.rule.facts(),
      usedResolutions: used,
      ...(scaleRaws ? { scaleRaws } : {}),
    });
  }
  return results;
}

/**
 * CAMERAS (Jalwana et al., CVPR 2021) as the authors' CAMERAS.py computes it: for each resolution r of R
 * (bicubic resize of the normalised input), one forward and backward pass; scales whose top-1 class differs
 * from the first's are dropped (unless the class is given); then
 * L = minmax(ReLU(sum_k mean_r(up(A_k^r)) * mean_r(up(G_k^r)))), `up` the bilinear resize to R[0].
 */
export const cameras: SaliencyMethod<CamerasMethodOptions> = {
  name: 'cameras',
  summary: 'CAMERAS: activations and gradients accumulated over resolutions and fused (Jalwana et al. 2021)',
  needs: ['layer-gradient'],
  options: ['resolutions', 'perScale'],
  multiResolution: true,
  async compute(context, input, options) {
    const total = (options.resolutions ?? context.resolutions).length;
    return (await camerasBatch(context, [input], options, 0, { done: 0, total }))[0] as MethodOutput;
  },
  computeBatch(context, inputs, options) {
    const total = (options.resolutions ?? context.resolutions).length * inputs.length;
    return camerasBatch(context, inputs, options, options.batch ? BATCH_PIXELS : 0, { done: 0, total });
  },
  postprocess: (raw, height, width) => minMax(relu(Float64Array.from(raw.data)), width, height),
  classResolution: (_input, options, resolutions) => (options.resolutions ?? resolutions)[0] as number,
};
