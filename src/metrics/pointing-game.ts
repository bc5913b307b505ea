import { type ClassMask, classMask, isDifficultPair } from '../datasets/mask.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import type { EvalMetric, ScoredRecord } from './metric.js';

/**
 * The pointing game's point (TorchRay's `pointing_game` benchmark): the first maximum, in row-major order, of
 * the map upsampled (bilinear) to the image's size. Returns `[x, y]`.
 */
export function pointOf(map: ArrayLike<number>, mapHeight: number, mapWidth: number, height: number, width: number): [number, number] {
  const values =
    mapHeight === height && mapWidth === width ? map : resizePlaneBilinear(Float64Array.from(map), mapHeight, mapWidth, height, width);
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return [best % width, Math.floor(best / width)];
}

/**
 * One trial of the pointing game as TorchRay's `PointingGame.evaluate` scores it: +1 (a hit) when a pixel of the
 * class's mask lies strictly within `tolerance` pixels of the point, -1 (a miss) otherwise, an empty mask included.
 */
export function pointingHit(mask: ClassMask, point: [number, number], tolerance = 15): 1 | -1 {
  const [px, py] = point;
  const limit = tolerance * tolerance;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[y * mask.width + x] && (x - px) ** 2 + (y - py) ** 2 < limit) return 1;
    }
  }
  return -1;
}

/**
 * Hits and misses per class, as TorchRay aggregates them: a class's accuracy is hits / max(1, hits + misses), and
 * the score is the mean over all the data set's classes (a class never tried counts as 0, as there). A result of
 * 0 (a skipped pair: all its boxes 'difficult', or outside the 'difficult' subset) is not counted.
 */
export class PointingGameScore {
  private readonly hits: Map<string, number>;
  private readonly misses: Map<string, number>;

  constructor(readonly classes: readonly string[]) {
    this.hits = new Map(classes.map((c) => [c, 0]));
    this.misses = new Map(classes.map((c) => [c, 0]));
  }

  add(className: string, result: 1 | 0 | -1): void {
    if (!this.hits.has(className)) throw new Error(`class '${className}' is not one of the data set's classes`);
    if (result === 1) this.hits.set(className, (this.hits.get(className) as number) + 1);
    else if (result === -1) this.misses.set(className, (this.misses.get(className) as number) + 1);
  }

  /** Per class: hits / max(1, hits + misses). */
  perClass(): Record<string, number> {
    return Object.fromEntries(
      this.classes.map((c) => {
        const hits = this.hits.get(c) as number;
        return [c, hits / Math.max(1, hits + (this.misses.get(c) as number))];
      }),
    );
  }

  /** The mean of the per-class accuracies over all classes. */
  mean(): number {
    const values = Object.values(this.perClass());
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN;
  }
}

/** TorchRay's mean over the data set's classes, of the records that have a pointing result. */
function pointingOver(records: readonly ScoredRecord[], classes: readonly string[]): number | undefined {
  if (!records.some((r) => r.pointing !== undefined)) return undefined;
  const score = new PointingGameScore(classes);
  for (const r of records) if (r.pointing !== undefined && classes.includes(r.class)) score.add(r.class, r.pointing as 1 | 0 | -1);
  return score.mean();
}

/**
 * `pointing`: the pointing game as TorchRay plays it, on all pairs and on the 'difficult' subset (Zhang et al.:
 * the class's region under a quarter of the image and another class present).
 */
export const pointingMetric: EvalMetric = {
  name: 'pointing',
  summary: "TorchRay's pointing game: is the map's maximum within the tolerance of the class's ground truth",
  byDefault: true,
  columns: [
    { key: 'pointing', header: 'pointing', summarise: pointingOver },
    {
      key: 'pointingDifficult',
      header: 'pointing (difficult)',
      summarise: (records, classes) => {
        const difficult = records.filter((r) => r.difficult && r.pointing);
        return difficult.length ? pointingOver(difficult, classes) : undefined;
      },
    },
  ],
  caption: "Pointing: TorchRay's pointing game (mean of per-class accuracies)",
  async score({ annotation, className, result, tolerance }) {
    const mask = classMask(annotation, className);
    return {
      pointing: mask
        ? pointingHit(mask, pointOf(result.map, result.height, result.width, annotation.height, annotation.width), tolerance)
        : 0,
      difficult: mask ? isDifficultPair(annotation, className, mask) : false,
    };
  },
};
