import { resizePlaneBilinear } from '../engine/resize.js';
import { topOne } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { Explainer, ExplainOptions } from '../explainer.js';
import type { FloatArray } from '../io/npy.js';
import type { ExplainResult } from '../methods/method.js';
import { OnnxGraph } from '../onnx/graph.js';
import { parameterLayers, randomiseLayers } from '../onnx/randomise.js';
import { percentile } from './road.js';
import { hog, spearman, ssim } from './similarity.js';

/** How the model is randomised (Adebayo et al. 2018): from the logits down, accumulating, or one layer at a time. */
export type RandomisationMode = 'cascading' | 'independent';

export interface SanityOptions {
  mode?: RandomisationMode;
  /** How many of the weighted layers, counted from the logits, each step randomises (cascading) or which single layer (independent); default 1, 2, 4, ... and all. */
  depths?: number[];
  seed?: number;
  /** Each method's explain options (resolutions and the like); the class is the original model's top-1 unless given. */
  explain?: (method: string) => ExplainOptions;
  classIndex?: number;
  /**
   * How input attributions (gradient, SmoothGrad, ...) are compared: 'adebayo' (default) as Adebayo et al.'s code
   * views them (`adebayoGrayscale` and `adebayoDiverging`), 'method' as the method's own post-processed map.
   */
  attributionView?: AttributionView;
  onProgress?: (done: number, total: number) => void;
}

export type AttributionView = 'adebayo' | 'method';

/**
 * How far a randomised model's map moved from the original's. For input attributions under the 'adebayo' view,
 * "post-processed map" below reads Adebayo's grayscale view and "signed map" their diverging view.
 */
export interface Similarity {
  /** Spearman rank correlation of the post-processed maps (|map|: they are non-negative). */
  spearmanAbs: number;
  /** Spearman rank correlation of the raw, signed maps before post-processing. */
  spearmanSigned: number;
  /** Structural similarity of the post-processed maps (Gaussian window, sigma 1.5, data range 1). */
  ssim: number;
  /** Spearman rank correlation of the maps' HOG features (16 px cells), as Adebayo et al. also report. */
  spearmanHog: number;
}

export interface SanityStep {
  /** Layers randomised, counted from the logits (cascading) or the one layer's position (independent). */
  depth: number;
  /** Names of the randomised layers. */
  layers: string[];
  maps: Record<string, ExplainResult>;
  similarity: Record<string, Similarity>;
}

export interface SanityReport {
  classIndex: number;
  mode: RandomisationMode;
  /** The weighted layers, from the logits down. */
  layers: string[];
  original: Record<string, ExplainResult>;
  steps: SanityStep[];
}

/** Depths 1, 2, 4, ... and the whole count. */
export function defaultDepths(count: number): number[] {
  const depths: number[] = [];
  for (let d = 1; d < count; d *= 2) depths.push(d);
  depths.push(count);
  return depths;
}

/** The signed raw map at the post-processed map's size, so two models' raw maps compare position by position. */
function signedAt(result: ExplainResult): Float64Array {
  const raw = result.raw;
  if (!raw) return Float64Array.from(result.map);
  const plane = raw.channels > 1 ? channelSum(raw.data, raw.channels, false) : raw.data;
  return raw.height === result.height && raw.width === result.width
    ? Float64Array.from(plane)
    : resizePlaneBilinear(plane, raw.height, raw.width, result.height, result.width);
}

function channelSum(data: ArrayLike<number>, channels: number, absolute: boolean): Float64Array {
  const positions = data.length / channels;
  const out = new Float64Array(positions);
  for (let c = 0; c < channels; c++)
    for (let p = 0; p < positions; p++) {
      const v = data[c * positions + p] as number;
      out[p] = (out[p] as number) + (absolute ? Math.abs(v) : v);
    }
  return out;
}

/**
 * Adebayo et al.'s grayscale view of a channels-first input attribution (the `saliency` library's
 * `VisualizeImageGrayscale`): g = sum_c |a_c|, then clip((g - min g) / (p99(g) - min g), 0, 1).
 */
export function adebayoGrayscale(data: ArrayLike<number>, channels: number): Float64Array {
  const g = channelSum(data, channels, true);
  let low = Number.POSITIVE_INFINITY;
  for (const v of g) low = Math.min(low, v);
  const span = percentile(g, 99) - low;
  return g.map((v) => Math.min(1, Math.max(0, (v - low) / span)));
}

/**
 * Their diverging view (`VisualizeImageDiverging`): s = sum_c a_c, r = |p99(s)|, then clip((s + r) / 2r, -1, 1)
 * (their formula, which maps [-r, r] onto [0, 1] and clips only above).
 */
export function adebayoDiverging(data: ArrayLike<number>, channels: number): Float64Array {
  const s = channelSum(data, channels, false);
  const span = Math.abs(percentile(s, 99));
  return s.map((v) => Math.min(1, Math.max(-1, (v + span) / (2 * span))));
}

/** The map pair a similarity is computed on: the post-processed and signed maps, or Adebayo's views of an input attribution. */
function views(result: ExplainResult, view: AttributionView): { abs: Float64Array; signed: Float64Array; height: number; width: number } {
  const raw = result.raw;
  if (view === 'adebayo' && raw && raw.channels > 1)
    return {
      abs: adebayoGrayscale(raw.data, raw.channels),
      signed: adebayoDiverging(raw.data, raw.channels),
      height: raw.height,
      width: raw.width,
    };
  return { abs: Float64Array.from(result.map), signed: signedAt(result), height: result.height, width: result.width };
}

export function similarity(original: ExplainResult, randomised: ExplainResult, view: AttributionView = 'adebayo'): Similarity {
  const a = views(original, view);
  const b = views(randomised, view);
  return {
    spearmanAbs: spearman(a.abs, b.abs),
    spearmanSigned: spearman(a.signed, b.signed),
    ssim: ssim(a.abs, b.abs, a.height, a.width, 1),
    spearmanHog: spearman(hog(a.abs, a.height, a.width), hog(b.abs, b.height, b.width)),
  };
}

/**
 * Model-randomisation sanity check (Adebayo et al., NeurIPS 2018): each method's map on the trained model, then
 * on copies whose weighted layers are re-initialised (PyTorch's default scheme, seeded), from the logits down
 * (cascading) or one at a time (independent); a method that passes gives maps that move away from the original
 * (low rank correlation and SSIM). `create` builds an explainer of model bytes (at the same layer).
 */
export async function sanityCheck(
  create: (model: Uint8Array) => Promise<Explainer>,
  model: Uint8Array,
  input: FloatArray,
  methods: readonly string[],
  options: SanityOptions = {},
): Promise<SanityReport> {
  const mode = options.mode ?? 'cascading';
  const layers = parameterLayers(OnnxGraph.fromBytes(model))
    .map((l) => l.name)
    .reverse();
  const depths = options.depths ?? defaultDepths(layers.length);
  for (const d of depths)
    if (!Number.isInteger(d) || d < 1 || d > layers.length)
      throw new CamerasError(`depth ${d} is not between 1 and ${layers.length}, the model's weighted layers`);
  const total = (depths.length + 1) * methods.length;
  let done = 0;
  const explainAll = async (explainer: Explainer, classIndex: number) => {
    const maps: Record<string, ExplainResult> = {};
    for (const method of methods) {
      maps[method] = await explainer.explain(input, { ...options.explain?.(method), method, classIndex, raw: true });
      options.onProgress?.(++done, total);
    }
    return maps;
  };
  const trained = await create(model);
  let original: Record<string, ExplainResult>;
  let classIndex: number;
  try {
    classIndex = options.classIndex ?? topOne(await trained.logits(input)).index;
    original = await explainAll(trained, classIndex);
  } finally {
    await trained.dispose();
  }
  const steps: SanityStep[] = [];
  for (const depth of depths) {
    const chosen = mode === 'cascading' ? layers.slice(0, depth) : [layers[depth - 1] as string];
    const explainer = await create(randomiseLayers(model, chosen, options.seed ?? 0));
    try {
      const maps = await explainAll(explainer, classIndex);
      const sims = Object.fromEntries(
        methods.map((m) => [m, similarity(original[m] as ExplainResult, maps[m] as ExplainResult, options.attributionView)]),
      );
      steps.push({ depth, layers: chosen, maps, similarity: sims });
    } finally {
      await explainer.dispose();
    }
  }
  return { classIndex, mode, layers, original, steps };
}
