import { logProbabilityOf, topOne } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { Explainer } from '../explainer.js';
import { normalise, type PreprocessPreset, type RgbImage } from '../io/preprocess.js';
import { gaussian, mulberry32 } from '../random.js';

/** Where the attack pushes: toward a class (the least likely by default), or away from the clean top-1 class. */
export type AttackGoal = 'least-likely' | 'untargeted' | { class: number };

export interface PgdOptions {
  goal?: AttackGoal;
  /** Step geometry and budget: 'linf' (default) sign steps in a box, 'l2' normalised-gradient steps in a ball. */
  norm?: 'l2' | 'linf';
  /**
   * The budget of ||p|| in pixel units (the image in [0, 1] per channel); default none beyond the pixel range:
   * the attack stops on confidence and reports the norm it needed, as the paper measures it.
   */
  epsilon?: number;
  /** Each step's length in the norm's units; default 0.1 (l2), 1/255 (linf). */
  stepSize?: number;
  /** The iteration cap (default 500). */
  iterations?: number;
  /** Stop once the target's probability reaches this (untargeted: the new top-1's); default 0.9999. */
  confidence?: number;
  /** Start from a random point of the budget (seeded) rather than from the image. */
  randomStart?: boolean;
  seed?: number;
  /** The saliency penalty's weight beta (0: the plain attack). */
  beta?: number;
  /**
   * Steps without a new best target probability after which beta halves (default 10; 0 keeps beta fixed). A
   * fixed beta has an equilibrium where the penalty's pull matches the fading cross-entropy gradient, often below
   * the confidence; halving it then (the constant search of Carlini and Wagner, done in place) lets the attack
   * reach the confidence with the least penalty it needs.
   */
  patience?: number;
  /** Psi: the saliency map at the image's size, in [0, 1]; required when beta > 0. */
  saliency?: ArrayLike<number>;
  onStep?: (iteration: number, probability: number) => void;
}

export interface PgdResult {
  success: boolean;
  /** Steps taken (each one forward and backward pass). */
  iterations: number;
  /** The clean image's top-1 class, the class pushed toward (untargeted: the final top-1) and the final top-1. */
  originalClass: number;
  targetClass: number;
  finalClass: number;
  /** The penalty's weight at the end (beta, or less where it was halved). */
  finalBeta: number;
  /** The target's probability on the written image (untargeted: the final top-1's). */
  probability: number;
  /** The realised perturbation's norms in pixel units, after rounding to 8 bits. */
  l2: number;
  linf: number;
  /** The adversarial image, 8 bits per channel, at the model's input size: what a PNG holds. */
  image: RgbImage;
  /** The realised perturbation, pixel units, channels-first in the preset's channel order. */
  perturbation: Float32Array;
}

/** The image's pixels in [0, 1], channels-first in the preset's channel order (what `normalise` feeds the model). */
function pixelsOf(image: RgbImage, preset: PreprocessPreset): Float64Array {
  const plane = image.width * image.height;
  const out = new Float64Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const from = preset.bgr ? 2 - c : c;
    for (let p = 0; p < plane; p++) out[c * plane + p] = (image.data[p * 3 + from] as number) / 255;
  }
  return out;
}

/** Pixels in [0, 1] (channels-first) rounded to 8 bits as an RGB image: the written PNG's content. */
function quantise(pixels: Float64Array, width: number, height: number, preset: PreprocessPreset): RgbImage {
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const to = preset.bgr ? 2 - c : c;
    for (let p = 0; p < plane; p++) data[p * 3 + to] = Math.round(Math.min(1, Math.max(0, pixels[c * plane + p] as number)) * 255);
  }
  return { data, width, height };
}

/** The iteration cap's ceiling: 100,000 steps is hours on a CPU, and more is a typo. */
export const MAX_ITERATIONS = 100_000;
/** beta's ceiling: the paper uses 50; far past it the penalty's gradient alone steers and the attack cannot succeed. */
export const MAX_BETA = 1e6;

/**
 * The saliency penalty beta * ||p * (1 - Psi)||_2 (Psi broadcast over channels) and its closed-form gradient
 * beta * p * (1 - Psi)^2 / ||p * (1 - Psi)||_2 (zero where the norm is zero).
 */
export function saliencyPenalty(
  perturbation: ArrayLike<number>,
  saliency: ArrayLike<number>,
  beta: number,
): { value: number; gradient: Float64Array } {
  const plane = saliency.length;
  let squares = 0;
  for (let i = 0; i < perturbation.length; i++) squares += ((perturbation[i] as number) * (1 - (saliency[i % plane] as number))) ** 2;
  const norm = Math.sqrt(squares);
  const gradient = new Float64Array(perturbation.length);
  if (norm > 0)
    for (let i = 0; i < perturbation.length; i++)
      gradient[i] = (beta * (perturbation[i] as number) * (1 - (saliency[i % plane] as number)) ** 2) / norm;
  return { value: beta * norm, gradient };
}

function l2(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += (values[i] as number) ** 2;
  return Math.sqrt(s);
}

function linf(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i] as number));
  return m;
}

/**
 * Projected gradient descent on the pixels of one image (at the model's input size), minimising
 * J(I + p) + beta * ||p * (1 - Psi)||_2 with J the cross-entropy toward the target class (untargeted: minus the
 * cross-entropy of the clean class), p kept within its budget and I + p within [0, 1]. Each step evaluates the
 * image rounded to 8 bits, so the stop rule (target probability >= `confidence`) is judged on what a PNG holds,
 * and the gradient there steps the continuous p (straight through the rounding). Two additions to plain PGD make
 * the penalised attack reach the confidence: beta halves after `patience` steps without a new best probability,
 * and the penalty's pull stops a value at zero rather than carrying it across.
 */
export async function pgd(explainer: Explainer, image: RgbImage, preset: PreprocessPreset, options: PgdOptions = {}): Promise<PgdResult> {
  const norm = options.norm ?? 'linf';
  const epsilon = options.epsilon ?? (norm === 'l2' ? Math.sqrt(3 * image.width * image.height) : 1);
  const stepSize = options.stepSize ?? (norm === 'l2' ? 0.1 : 1 / 255);
  const cap = options.iterations ?? 500;
  const confidence = options.confidence ?? 0.9999;
  let beta = options.beta ?? 0;
  const patience = options.patience ?? 10;
  for (const [name, value] of [
    ['epsilon', epsilon],
    ['step size', stepSize],
  ] as const)
    if (!(value > 0 && Number.isFinite(value))) throw new CamerasError(`the attack's ${name} must be a positive number, not ${value}`);
  // Steps are counted from 1: a cap of 0 would write an "attack" that never stepped.
  if (!Number.isInteger(cap) || cap < 1 || cap > MAX_ITERATIONS)
    throw new CamerasError(`the iteration cap must be a whole number from 1 to ${MAX_ITERATIONS}, not ${cap}`);
  if (!(confidence > 0 && confidence <= 1)) throw new CamerasError(`the confidence must be in (0, 1], not ${confidence}`);
  if (!(beta >= 0 && beta <= MAX_BETA))
    throw new CamerasError(`beta must be from 0 to ${MAX_BETA} (the paper's is 50; past that the penalty alone steers), not ${beta}`);
  const { width, height } = image;
  const plane = width * height;
  if (beta > 0 && options.saliency?.length !== plane)
    throw new CamerasError(`the saliency penalty needs a ${width} x ${height} map (got ${options.saliency?.length ?? 'none'} values)`);
  const clean = pixelsOf(image, preset);
  const std = preset.std;
  const render = (pixels: Float64Array) => {
    const picture = quantise(pixels, width, height, preset);
    return { picture, tensor: normalise(picture, preset) };
  };

  const first = render(clean);
  const cleanLogits = (await explainer.forward([first.tensor]))[0] as Float32Array;
  const originalClass = topOne(cleanLogits).index;
  const goal = options.goal ?? 'least-likely';
  let targetClass = originalClass;
  if (goal === 'least-likely') {
    for (let k = 0; k < cleanLogits.length; k++) if ((cleanLogits[k] as number) < (cleanLogits[targetClass] as number)) targetClass = k;
  } else if (typeof goal === 'object') {
    if (!Number.isInteger(goal.class) || goal.class < 0 || goal.class >= cleanLogits.length)
      throw new CamerasError(`target class ${goal.class} is out of range: the model has ${cleanLogits.length} classes`);
    targetClass = goal.class;
  }
  const targeted = goal !== 'untargeted';

  const p = new Float64Array(clean.length);
  if (options.randomStart) {
    // A random point of the budget: uniform in the box (linf), or a uniform direction at a uniform radius (l2).
    const uniform = mulberry32(options.seed ?? 0);
    if (norm === 'linf') for (let i = 0; i < p.length; i++) p[i] = epsilon * ((2 * uniform()) / 4294967296 - 1);
    else {
      const normal = gaussian(options.seed ?? 0);
      for (let i = 0; i < p.length; i++) p[i] = normal();
      const scale = (epsilon * (uniform() / 4294967296)) / l2(p);
      for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) * scale;
    }
  }
  const adversarial = new Float64Array(clean.length);
  const clampInto = () => {
    for (let i = 0; i < p.length; i++) {
      // Keep I + p in the pixel range, then p in its budget (both are convex; the box keeps the budget's bound).
      const v = Math.min(1, Math.max(0, (clean[i] as number) + (p[i] as number)));
      p[i] = v - (clean[i] as number);
    }
    if (norm === 'linf') for (let i = 0; i < p.length; i++) p[i] = Math.min(epsilon, Math.max(-epsilon, p[i] as number));
    else {
      const size = l2(p);
      if (size > epsilon) for (let i = 0; i < p.length; i++) p[i] = ((p[i] as number) * epsilon) / size;
    }
    for (let i = 0; i < p.length; i++) adversarial[i] = (clean[i] as number) + (p[i] as number);
  };
  clampInto();

  let iteration = 0;
  let current = render(adversarial);
  let best = Number.NEGATIVE_INFINITY;
  let stalled = 0;
  for (;;) {
    const followed = targeted ? targetClass : originalClass;
    const { gradient, logits } = await explainer.inputGradient(current.tensor, followed, 'logprob');
    const top = topOne(logits);
    const probability = targeted ? Math.exp(logProbabilityOf(logits, targetClass)) : top.probability;
    options.onStep?.(iteration, probability);
    const success = targeted ? probability >= confidence : top.index !== originalClass && probability >= confidence;
    if (success || iteration >= cap) return result(success, iteration, targeted ? targetClass : top.index, top.index, probability);
    // Progress: the target's probability rising, or (untargeted) the clean class's falling.
    const progress = targeted ? probability : 1 - Math.exp(logProbabilityOf(logits, originalClass));
    if (progress > best) {
      best = progress;
      stalled = 0;
    } else if (patience > 0 && beta > 0 && ++stalled >= patience) {
      beta /= 2;
      stalled = 0;
    }
    // The loss's gradient in pixel units: minus d log p_target (targeted) or + d log p_clean (untargeted), /std.
    const sign = targeted ? -1 : 1;
    const step = new Float64Array(p.length);
    for (let c = 0; c < 3; c++)
      for (let q = 0; q < plane; q++) step[c * plane + q] = (sign * (gradient[c * plane + q] as number)) / (std[c] as number);
    const penalty = beta > 0 ? saliencyPenalty(p, options.saliency as ArrayLike<number>, beta).gradient : undefined;
    if (penalty) for (let i = 0; i < step.length; i++) step[i] = (step[i] as number) + (penalty[i] as number);
    const before = Float64Array.from(p);
    if (norm === 'linf') for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) - stepSize * Math.sign(step[i] as number);
    else {
      const size = l2(step);
      if (size > 0) for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) - (stepSize * (step[i] as number)) / size;
    }
    // The penalty shrinks p toward zero, never past it: a value the penalty's pull carried across zero stops at
    // zero (as a proximal step would), so pixels off the map settle at zero instead of flickering by a step.
    if (penalty)
      for (let i = 0; i < p.length; i++) {
        const was = before[i] as number;
        if (was !== 0 && Math.sign(p[i] as number) !== Math.sign(was) && Math.sign(penalty[i] as number) === Math.sign(was)) p[i] = 0;
      }
    clampInto();
    iteration++;
    current = render(adversarial);
  }

  function result(success: boolean, iterations: number, target: number, finalClass: number, probability: number): PgdResult {
    const written = pixelsOf(current.picture, preset);
    const perturbation = new Float32Array(written.length);
    for (let i = 0; i < written.length; i++) perturbation[i] = (written[i] as number) - (clean[i] as number);
    return {
      success,
      iterations,
      originalClass,
      targetClass: target,
      finalClass,
      probability,
      finalBeta: beta,
      l2: l2(perturbation),
      linf: linf(perturbation),
      image: current.picture,
      perturbation,
    };
  }
}
