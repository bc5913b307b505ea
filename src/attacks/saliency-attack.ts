import { resizePlaneBilinear } from '../engine/resize.js';
import type { Explainer, ExplainOptions } from '../explainer.js';
import { normalise, type PreprocessPreset, type RgbImage } from '../io/preprocess.js';
import type { ExplainResult } from '../methods/method.js';
import { DEFAULT_METHOD } from '../methods/registry.js';
import { type PgdOptions, type PgdResult, pgd } from './pgd.js';

export interface SaliencyAttackOptions extends Omit<PgdOptions, 'beta' | 'saliency'> {
  /** The penalty's weight (default 50, the paper's). */
  beta?: number;
  /** The registered method whose map of the clean top-1 class guides the attack (default 'cameras'). */
  method?: string;
  /** That method's options (resolutions and the like). */
  explain?: ExplainOptions;
  /** Run the plain attack (beta 0) on the same image and settings too, for the comparison (default true). */
  plain?: boolean;
}

export interface SaliencyAttackResult {
  guided: PgdResult;
  plain?: PgdResult;
  /** Psi: the map of the clean top-1 class on the clean image, at the image's size, in [0, 1]. */
  saliency: Float64Array;
  /** The method's map of the clean class on the clean image, and of the target class on the guided adversarial image. */
  before: ExplainResult;
  after: ExplainResult;
  /** 1 - ||p_guided||_2 / ||p_plain||_2 when both succeed. */
  l2Reduction?: number;
}

/** A map at the image's size, as Psi in [0, 1] (maps come min-max normalised; a constant map is all zeros). */
function saliencyAt(result: ExplainResult, width: number, height: number): Float64Array {
  const map =
    result.width === width && result.height === height
      ? Float64Array.from(result.map)
      : resizePlaneBilinear(Float64Array.from(result.map), result.height, result.width, height, width);
  return map.map((v) => Math.min(1, Math.max(0, v)));
}

/**
 * The paper's saliency-guided attack (CAMERAS, CVPR 2021, section 5): PGD toward the target minimising
 * J(I + p, target) + beta * ||p * (1 - Psi)||_2, Psi the chosen method's map of the true (clean top-1) class,
 * beside the plain attack (beta = 0) with the same settings. `image` is at the model's input size.
 */
export async function saliencyGuidedAttack(
  explainer: Explainer,
  image: RgbImage,
  preset: PreprocessPreset,
  options: SaliencyAttackOptions = {},
): Promise<SaliencyAttackResult> {
  const method = options.method ?? DEFAULT_METHOD;
  const clean = normalise(image, preset);
  const before = await explainer.explain(clean, { ...options.explain, method, classIndex: null });
  const saliency = saliencyAt(before, image.width, image.height);
  const { beta = 50, plain: runPlain = true, ...settings } = options;
  const guided = await pgd(explainer, image, preset, { ...settings, beta, saliency });
  const plain = runPlain ? await pgd(explainer, image, preset, { ...settings, beta: 0 }) : undefined;
  const after = await explainer.explain(normalise(guided.image, preset), {
    ...options.explain,
    method,
    classIndex: guided.targetClass,
  });
  return {
    guided,
    ...(plain ? { plain } : {}),
    saliency,
    before,
    after,
    ...(plain?.success && guided.success && plain.l2 > 0 ? { l2Reduction: 1 - guided.l2 / plain.l2 } : {}),
  };
}
