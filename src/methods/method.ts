import type { FusionScale } from '../engine/fusion.js';
import type { GradientPass } from '../engine/gradient-session.js';
import type { RawMap, SaliencyMap } from '../engine/postprocess.js';
import type { ScaleFacts } from '../engine/scales.js';
import type { Target } from '../engine/scores.js';
import type { FloatArray } from '../io/npy.js';

/** Forward and backward passes: one image, or several stacked where the model allows. */
export interface PassRunner {
  run(input: FloatArray, classIndex: number | null, target?: Target): Promise<GradientPass>;
  runEach(inputs: FloatArray[], classIndex: number | null, target?: Target): Promise<GradientPass[]>;
}

/** What a method runs on; the explainer builds each part once, the costly ones on first use. */
export interface MethodContext {
  /**
   * Forward and backward pass to the target layer: its activation and the target's gradient there, as `[N, C, H, W]`
   * (the profile's layer view applied; `native` keeps the layer's own tensor where the view changed it).
   */
  readonly layer: PassRunner;
  /** Forward and backward pass to the input pixels. */
  inputGradients(): Promise<PassRunner>;
  /** Forward passes only (no backward): each input's explained output `[1, ...]`, stacked into one call where the model allows. */
  forward(inputs: FloatArray[]): Promise<FloatArray[]>;
  /**
   * The network from the target layer to the explained output, run on edited activations `[batch, C, H, W]` (in the
   * layer view; `native` is one image's layer tensor as the model made it; `input`, the image, for a head that reads
   * its shape): the outputs `[batch, ...]`.
   */
  head(): Promise<(activations: FloatArray, native: FloatArray, input?: FloatArray) => Promise<FloatArray>>;
  /** CAMERAS' fusion of kept scales: sum over channels of (sum of resized A) x (sum of resized G), `size x size`. */
  fuseSums(scales: FusionScale[], size: number): Promise<Float64Array>;
  /** The input's value of a black pixel, per channel (the preprocessing's (0 - mean) / std): what occlusion fills in. */
  readonly blackPixel: readonly number[];
  /** The model's default resolutions (its profile's), for methods that run at several. */
  readonly resolutions: readonly number[];
  /** A transformer's attention probabilities, block by block, and the target's gradients there (rollout, Chefer's method). */
  attention(): Promise<AttentionRunner>;
}

/** One image's pass through a transformer's attention. */
export interface AttentionPass {
  /** The explained output `[1, ...]`. */
  output: FloatArray;
  /** Per block, in order: the attention probabilities `[heads, T, T]` (rows attend to columns) and d(target)/d(them). */
  blocks: { attention: FloatArray; gradient: FloatArray }[];
  /** Where the image's patches are among the T tokens: `prefix` class/distillation tokens, then an `h x w` grid. */
  grid: { prefix: number; h: number; w: number };
}

/** Passes that return every block's attention (the Softmax outputs that weight the values) and its gradient. */
export interface AttentionRunner {
  run(input: FloatArray, classIndex: number | null, target?: Target): Promise<AttentionPass>;
}

/**
 * What a method needs from the model; shown by `cameras methods` and in the README. `layer-activation`: the layer's
 * activation alone (its gradient unused), so a function target without a `gradient` serves it. `attention`: a
 * transformer's attention probabilities (global over the patches: ViT, DeiT; not Swin's windows); `attention-gradient`:
 * and the target's gradients there.
 */
export type MethodNeed =
  | 'layer-gradient'
  | 'layer-activation'
  | 'input-gradient'
  | 'head'
  | 'masked-forward'
  | 'attention'
  | 'attention-gradient';

/** Options every method takes. */
export interface CommonOptions {
  /** Class to explain; omitted or null: the top-1 class (at the first resolution, for multi-scale methods). */
  classIndex?: number | null;
  /**
   * What is differentiated or scored: the class logit (default), its probability, a contrast or weights over the
   * logits; a region of a dense output (`{ segment: k, mask? }`); or any function of the output (`{ score, gradient }`).
   */
  target?: Target;
  /** The output explained (by name); default: the profile's, the model's first. */
  output?: string;
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
  /** Square input sizes; the first is the map's size (default: the model profile's, 224, 324, ..., 924 for a 224 px model, the paper's). */
  resolutions?: readonly number[];
  /** Also return each used resolution's map alone (`scaleMaps`), to show what each scale adds. */
  perScale?: boolean;
}

/** What a method computes for one image, before post-processing; the class facts where the output is a classifier's. */
export interface MethodOutput extends ScaleFacts {
  raw: RawMap;
  /** Size of the post-processed map. */
  height: number;
  width: number;
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
  classResolution?(input: FloatArray, options: O, resolutions: readonly number[]): number;
  /** True for a method that always runs at several resolutions (CAMERAS): it takes `resolutions` and `perScale` as they are. */
  readonly multiResolution?: boolean;
  /** True for a method that is already a NoiseTunnel (SmoothGrad): `smooth` is refused on it. */
  readonly smoothed?: boolean;
  /** Many images at once, each with the map it gets alone (CAMERAS stacks them per scale). */
  computeBatch?(context: MethodContext, inputs: FloatArray[], options: CommonOptions & O & { batch?: boolean }): Promise<MethodOutput[]>;
}

/**
 * The result of `explain`: the map and what it explains. The class facts (`classIndex`, `classPerResolution`,
 * `probPerResolution`, `classProbability`) are there where the explained output is a classifier's; a region of a
 * dense output reports its class alone, a function target none.
 */
export interface ExplainResult extends SaliencyMap, ScaleFacts {
  method: string;
  /** What was explained: `logit`, `prob`, `contrast:<class>`, `weights(logits|probabilities)`, `segment:<class>`, ... */
  target: string;
  /** The output explained. */
  output: string;
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
