import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { isOutputTarget, probabilityOf, type Target, topOne } from './scores.js';

/** The paper's default scales: 224, 324, ..., 924 (`range(224, 1000, 100)`). */
export const DEFAULT_RESOLUTIONS: readonly number[] = [224, 324, 424, 524, 624, 724, 824, 924];

export function validateResolutions(resolutions: readonly number[]): void {
  if (resolutions.length === 0) throw new CamerasError("the 'resolutions' list is empty; give at least one size, e.g. 224, 324, 424");
  for (const r of resolutions) {
    if (!Number.isInteger(r) || r < 8 || r > 4096) {
      throw new CamerasError(`resolution ${r} is not an integer between 8 and 4096; give sizes such as 224, 324, 424`);
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
  const bad = input.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new CamerasError(
      `input tensor has a non-finite value (${input.data[bad]}) at index ${bad}; every value must be a finite number: check how it was made`,
    );
}

/** What a result reports about classes and scales; the class facts only where the explained output is a classifier's. */
export interface ScaleFacts {
  /** The class explained: given, or the first scale's top-1. */
  classIndex?: number;
  /** The class used at each resolution (the given class, or that scale's top-1). */
  classPerResolution?: Record<string, number>;
  /** The top-1 softmax probability at each resolution. */
  probPerResolution?: Record<string, number>;
  /** Resolutions that went into the map (the class-consistency rule). */
  usedResolutions: number[];
  /** Softmax probability of the explained class at the first resolution. */
  classProbability?: number;
}

/**
 * The paper's class-consistency rule over scales: with a class given, every scale is kept for it; otherwise
 * each scale explains its own top-1 class and is kept only when that is the first scale's class. An output that is
 * not a classifier's `[1, classes]` logits (a segmenter's, explained by a region) has no top-1 class, nor does a
 * function target on any output: every scale is kept, and only the given class, if any, is reported.
 */
export class ClassConsistency {
  readonly classPerResolution: Record<string, number> = {};
  readonly probPerResolution: Record<string, number> = {};
  readonly used: number[] = [];
  firstClass = -1;
  classProbability = 0;
  /** False once an output was not a classifier's, or from the start for a function target. */
  private classifier: boolean;

  constructor(
    private readonly requested: number | null,
    target?: Target,
  ) {
    this.classifier = !isOutputTarget(target);
  }

  /** Records one scale's output; true when the scale is kept. */
  keep(resolution: number, output: FloatArray): boolean {
    if (!this.classifier || output.shape.length !== 2) {
      this.classifier = false;
      this.used.push(resolution);
      return true;
    }
    const logits = output.data;
    const top = topOne(logits);
    const cls = this.requested ?? top.index;
    this.classPerResolution[resolution] = cls;
    this.probPerResolution[resolution] = top.probability;
    if (this.firstClass < 0) {
      this.firstClass = cls;
      this.classProbability = probabilityOf(logits, cls);
    }
    if (cls !== this.firstClass && cls !== this.requested) return false;
    this.used.push(resolution);
    return true;
  }

  get classIndex(): number | undefined {
    if (!this.classifier) return this.requested ?? undefined;
    return this.requested ?? this.firstClass;
  }

  /** What a result reports about classes and scales. */
  facts(): ScaleFacts {
    if (!this.classifier) return { ...(this.requested !== null ? { classIndex: this.requested } : {}), usedResolutions: this.used };
    return {
      classIndex: this.classIndex,
      classPerResolution: this.classPerResolution,
      probPerResolution: this.probPerResolution,
      usedResolutions: this.used,
      classProbability: this.classProbability,
    };
  }
}
