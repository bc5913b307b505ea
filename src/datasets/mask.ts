import type { AnnotatedObject, Annotation } from './voc.js';

/** A binary mask over the image, row-major `height x width` (1 where the class is). */
export interface ClassMask {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Pixels whose centre lies inside the polygon (even-odd rule), set in `mask`. */
function fillPolygon(mask: ClassMask, polygon: number[]): void {
  const n = polygon.length / 2;
  for (let y = 0; y < mask.height; y++) {
    const cy = y + 0.5;
    const crossings: number[] = [];
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const [xi, yi, xj, yj] = [
        polygon[2 * i] as number,
        polygon[2 * i + 1] as number,
        polygon[2 * j] as number,
        polygon[2 * j + 1] as number,
      ];
      if (yi > cy !== yj > cy) crossings.push(xi + ((cy - yi) * (xj - xi)) / (yj - yi));
    }
    crossings.sort((a, b) => a - b);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      const from = Math.max(0, Math.ceil((crossings[k] as number) - 0.5));
      const to = Math.min(mask.width - 1, Math.floor((crossings[k + 1] as number) - 0.5));
      for (let x = from; x <= to; x++) mask.data[y * mask.width + x] = 1;
    }
  }
}

/** A COCO run-length mask (column-major, 0s first) set in `mask`, where the two overlap. */
function fillRuns(mask: ClassMask, runs: NonNullable<AnnotatedObject['runs']>): void {
  let at = 0;
  runs.counts.forEach((length, k) => {
    if (k % 2 === 1)
      for (let i = at; i < at + length; i++) {
        const x = Math.floor(i / runs.height);
        const y = i % runs.height;
        if (x < mask.width && y < mask.height) mask.data[y * mask.width + x] = 1;
      }
    at += length;
  });
}

function fillBox(mask: ClassMask, object: AnnotatedObject): void {
  const { xmin, ymin, xmax, ymax } = object.box;
  for (let y = Math.max(0, ymin); y <= Math.min(mask.height - 1, ymax); y++)
    for (let x = Math.max(0, xmin); x <= Math.min(mask.width - 1, xmax); x++) mask.data[y * mask.width + x] = 1;
}

/**
 * The class's ground-truth region in an image, as TorchRay's benchmark builds it: the union of the class's boxes
 * (VOC, difficult ones included), polygons (COCO; pixel centres inside, which can differ from pycocotools on
 * boundary pixels) or run-length masks (COCO crowd regions). Undefined when the pair is skipped: every box of the class is 'difficult'.
 */
export function classMask(annotation: Annotation, className: string): ClassMask | undefined {
  const objects = annotation.objects.filter((o) => o.className === className);
  if (objects.length === 0 || objects.every((o) => o.difficult)) return undefined;
  const mask: ClassMask = {
    data: new Uint8Array(annotation.width * annotation.height),
    width: annotation.width,
    height: annotation.height,
  };
  for (const object of objects) {
    if (object.runs) fillRuns(mask, object.runs);
    else if (object.polygons) for (const polygon of object.polygons) fillPolygon(mask, polygon);
    else fillBox(mask, object);
  }
  return mask;
}

/**
 * Whether a pair belongs to the pointing game's 'difficult' subset, by the definition of Zhang et al. (ECCV 2016,
 * "Top-down neural attention by excitation backprop"), which TorchRay's subset lists were made from: the class's
 * region covers less than a quarter of the image and the image holds at least one other class.
 */
export function isDifficultPair(annotation: Annotation, className: string, mask: ClassMask): boolean {
  let area = 0;
  for (const v of mask.data) area += v;
  return classesIn(annotation).some((c) => c !== className) && area < (mask.width * mask.height) / 4;
}

/** The classes present in an image, in order of first appearance. */
export function classesIn(annotation: Annotation): string[] {
  return [...new Set(annotation.objects.map((o) => o.className))];
}
