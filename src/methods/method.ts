import type { FusionScale } from '../engine/fusion.js';
import type { GradientSession } from '../engine/gradient-session.js';
import type { RawMap, SaliencyMap } from '../engine/postprocess.js';
import type { Target } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';

/** What a method runs on; the explainer builds each part once, the costly ones on first use. */
export interface MethodContext {
  /** Forward and backward pass to the target layer: its activation and the target's gradient there. */
  readonly layer: GradientSession;
  /** Forward and backward pass to the input pixels. */
  inputGradients(): Promise<GradientSession>;
  /** Forward passes only (no backward): each input's logits, stacked into one call where the model allows. */
  forward(inputs: FloatArray[]): Promise<Float32Array[]>;
  /** The network from the target layer to the logits, run on edited activations: logits `[batch, classes]`. */
  head(): Promise<(activations: FloatArray) => Promise<Float32Array>>;
  /** CAMERAS' fusion of kept scales: sum over channels of (sum of resized A) x (sum of resized G), `size x size`. */
  fuseSums(scales: FusionScale[], size: number): Promise<Float64Array>;
}

/** What a method needs from the model; shown by `cameras methods` and in the README. */
export type MethodNeed = 'layer-gradient' | 'input-gradient' | 'head' | 'masked-forward';

/** Options every method takes. */
export interface CommonOptions {
  /** Class to explain; omitted or null: the top-1 class (at the first resolution, for multi-scale methods). */
  classIndex?: number | null;
  /** What is differentiated or scored: the class logit (default), its probability, a contrast, or weights over the logits. */
  target?: Target;
  /** Also return the raw, signed map before post-processing (`result.raw`), as Captum returns attributions. */
  raw?: boolean;
  /** NoiseTunnel (SmoothGrad over any method): the method's raw maps averaged over noisy copies of the input. */
  smooth?: NoiseOptions;
  /** Called as the work advances (scales, samples, channel batches), for progress bars. */
  onProgress?: (done: number, total: number) => void;
}

export interface NoiseOptions {
  /** Noisy copies (default 25). */
  samples?: number;
  /** Noise standard deviation as a fraction of the input's range (default 0.15, as Smilkov et al.). */
  noise?: number;
  /** Seed of the noise: the same seed gives the same map. */
  seed?: number;
}

/** Options of the methods that run at several resolutions (CAMERAS, and CAM methods with `multiScale`). */
export interface ScaleOptions {
  /** Square input sizes; the first is the map's size (default 224, 324, ..., 924, the paper's). */
  resolutions?: readonly number[];
  /** Also return each used resolution's map alone (`scaleMaps`), to show what each scale adds. */
  perScale?: boolean;
}

/** What a method computes for one image, before post-processing. */
export interface MethodOutput {
  raw: RawMap;
  /** Size of the post-processed map. */
  height: number;
  width: number;
  classIndex: number;
  /** The class used at each resolution (the given class, or that scale's top-1). */
  classPerResolution: Record<string, number>;
  /** The top-1 softmax probability at each resolution. */
  probPerResolution: Record<string, number>;
  /** Resolutions that went into the map (the class-consistency rule). */
  usedResolutions: number[];
  /** Softmax probability of the explained class at the first resolution. */
  classProbability: number;
  /** The raw map of each used resolution alone (`perScale`). */
  scaleRaws?: { resolution: number; raw: RawMap }[];
  /** Integrated Gradients: |sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|. */
  completenessError?: number;
}

/**
 * A saliency method: one file under `src/methods/`, one object, one line in the registry. `compute` returns
 * the raw map; `postprocess` turns it into the picture. `options` lists the method's own options: any
 * other option given to it is refused by name.
 */
export interface SaliencyMethod<O extends object = object> {
  readonly name: string;
  /** One line: what it computes and whose definition it follows. */
  readonly summary: string;
  readonly needs: readonly MethodNeed[];
  readonly options: readonly (keyof O & string)[];
  compute(context: MethodContext, input: FloatArray, options: CommonOptions & O): Promise<MethodOutput>;
  postprocess(raw: RawMap, height: number, width: number, options: O): SaliencyMap;
  /** The input size at which the method picks the top-1 class (default: the input's own): NoiseTunnel asks it. */
  classResolution?(input: FloatArray, options: O): number;
  /** True for a method that is already a NoiseTunnel (SmoothGrad): `smooth` is refused on it. */
  readonly smoothed?: boolean;
  /** Many images at once, each with the map it gets alone (CAMERAS stacks them per scale). */
  computeBatch?(context: MethodContext, inputs: FloatArray[], options: CommonOptions & O & { batch?: boolean }): Promise<MethodOutput[]>;
}

/** The result of `explain`: the map and what it explains. */
export interface ExplainResult extends SaliencyMap {
  method: string;
  /** What was explained: `logit`, `prob`, `contrast:<class>` or `weights(logits|probabilities)`. */
  target: string;
  /** The class explained. */
  classIndex: number;
  classPerResolution: Record<string, number>;
  probPerResolution: Record<string, number>;
  usedResolutions: number[];
  classProbability: number;
  /** With `perScale`: the map of each used resolution on its own. */
  scaleMaps?: { resolution: number; map: SaliencyMap }[];
  /** With `raw: true`: the signed map before post-processing. */
  raw?: RawMap;
  /** Integrated Gradients' completeness error. */
  completenessError?: number;
}

/** An image tensor's height and width. */
export function imageSize(input: FloatArray): { height: number; width: number } {
  const [, , height, width] = input.shape as [number, number, number, number];
  return { height, width };
}

/** A map over positions as a one-plane raw map. */
export function plane(data: Float64Array, height: number, width: number): RawMap {
  return { data, channels: 1, height, width };
}
