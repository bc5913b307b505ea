import { CamerasError } from '../errors.js';
import { ablationcam } from './ablationcam.js';
import { cameras } from './cameras.js';
import { chefer } from './chefer.js';
import { drise } from './drise.js';
import { eigencam } from './eigencam.js';
import { gradcam } from './gradcam.js';
import { gradcamElementwise } from './gradcam-elementwise.js';
import { gradcampp } from './gradcampp.js';
import { gradient } from './gradient.js';
import { gradientXInput } from './gradient-x-input.js';
import { hirescam } from './hirescam.js';
import { integratedGradients } from './integrated-gradients.js';
import { layercam } from './layercam.js';
import type { SaliencyMethod } from './method.js';
import { normgrad } from './normgrad.js';
import { rollout } from './rollout.js';
import { scorecam } from './scorecam.js';
import { smoothgrad } from './smoothgrad.js';
import { xgradcam } from './xgradcam.js';

/** Every method `explain` takes, in the order listings show them. Adding a method: its file, and one line here. */
export const REGISTRY = [
  cameras,
  gradcam,
  gradcampp,
  hirescam,
  xgradcam,
  layercam,
  gradcamElementwise,
  normgrad,
  eigencam,
  scorecam,
  ablationcam,
  drise,
  gradient,
  gradientXInput,
  smoothgrad,
  integratedGradients,
  rollout,
  chefer,
] as const satisfies readonly SaliencyMethod<never>[];

type OptionsOf<M> = M extends SaliencyMethod<infer O> ? O : never;
type Intersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

/** Every registered method's own options in one type, derived from the registry: what `explain` takes beside the common options. */
export type MethodOptions = Intersection<OptionsOf<(typeof REGISTRY)[number]>>;

/** The method `explain` runs when none is named: CAMERAS. */
export const DEFAULT_METHOD: string = cameras.name;

/** Every method's name. */
export const METHODS: readonly string[] = REGISTRY.map((m) => m.name);

/** The registered method of that name, or a one-line error listing them. */
export function methodByName(name: string): SaliencyMethod<object> {
  const found = REGISTRY.find((m) => m.name === name);
  if (!found) throw new CamerasError(`unknown method '${name}'; choose one of: ${METHODS.join(', ')}`);
  return found as SaliencyMethod<object>;
}
