import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { probabilityOf, topOne } from './scores.js';

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

/**
 * The paper's class-consistency rule over scales: with a class given, every scale is kept for it; otherwise
 * each scale explains its own top-1 class and is kept only when that is the first scale's class.
 */
export class ClassConsistency {
  readonly classPerResolution: Record<string, number> = {};
  readonly probPerResolution: Record<string, number> = {};
  readonly used: number[] = [];
  firstClass = -1;
  classProbability = 0;

  constructor(private readonly requested: number | null) {}

  /** Records one scale's logits; true when the scale is kept. */
  keep(resolution: number, logits: Float32Array): boolean {
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

  get classIndex(): number {
    return this.requested ?? this.firstClass;
  }

  /** What a result reports about classes and scales. */
  facts() {
    return {
      classIndex: this.classIndex,
      classPerResolution: this.classPerResolution,
      probPerResolution: this.probPerResolution,
      usedResolutions: this.used,
      classProbability: this.classProbability,
    };
  }
}
