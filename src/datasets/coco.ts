import { CamerasError } from '../errors.js';
import type { AnnotatedObject, Annotation } from './voc.js';

interface CocoFile {
  images?: { id?: number; file_name?: string; width?: number; height?: number }[];
  annotations?: { image_id?: number; category_id?: number; bbox?: number[]; segmentation?: unknown; iscrowd?: number }[];
  categories?: { id?: number; name?: string }[];
}

/**
 * The run lengths of a COCO compressed RLE string (pycocotools' `rleFrString`): each count in 5-bit groups, low
 * first, 48 added to each, bit 0x20 "more follows", 0x10 of the last group the sign; from the third on, a count is
 * stored as its difference from the count two before.
 */
export function decodeRleString(text: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2] as number;
    counts.push(x);
  }
  return counts;
}

/** A crowd region's `segmentation` ({ counts, size: [h, w] }, counts a list or a compressed string) as runs. */
function runsOf(segmentation: unknown, source: string, index: number): AnnotatedObject['runs'] {
  const rle = segmentation as { counts?: unknown; size?: unknown };
  const size = rle.size as number[] | undefined;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0))
    throw new CamerasError(`${source}: annotations[${index}].segmentation needs 'size' [height, width]`);
  let counts: number[];
  if (typeof rle.counts === 'string') counts = decodeRleString(rle.counts);
  else if (Array.isArray(rle.counts) && rle.counts.every((v) => Number.isInteger(v) && v >= 0)) counts = rle.counts as number[];
  else throw new CamerasError(`${source}: annotations[${index}].segmentation needs 'counts' (a list of run lengths or an RLE string)`);
  const [height, width] = size as [number, number];
  if (counts.reduce((a, b) => a + b, 0) !== height * width || counts.some((v) => v < 0))
    throw new CamerasError(`${source}: annotations[${index}].segmentation's run lengths do not cover its ${height} x ${width} size`);
  return { counts, height, width };
}

/**
 * COCO detection annotations (`images`, `annotations` with `bbox` [x, y, w, h], `segmentation` polygons or
 * crowd run-length masks, `categories`) as one `Annotation` per image. A file that is not JSON, or a missing
 * field, is an error naming the file and the field.
 */
export function parseCoco(text: string, source: string): Annotation[] {
  let coco: CocoFile;
  try {
    coco = JSON.parse(text) as CocoFile;
  } catch (error) {
    throw new CamerasError(
      `${source} is not JSON (${(error as Error).message.replace(/\s+/g, ' ').slice(0, 120)}); give a COCO annotation file`,
    );
  }
  for (const key of ['images', 'annotations', 'categories'] as const)
    if (!Array.isArray(coco[key])) throw new CamerasError(`${source}: the '${key}' list is missing`);
  const names = new Map<number, string>();
  coco.categories?.forEach((c, i) => {
    if (typeof c.id !== 'number' || typeof c.name !== 'string') throw new CamerasError(`${source}: categories[${i}] needs 'id' and 'name'`);
    names.set(c.id, c.name);
  });
  const images = new Map<number, Annotation>();
  coco.images?.forEach((image, i) => {
    if (typeof image.id !== 'number' || typeof image.file_name !== 'string' || !image.width || !image.height)
      throw new CamerasError(`${source}: images[${i}] needs 'id', 'file_name', 'width' and 'height'`);
    images.set(image.id, { file: image.file_name, width: image.width, height: image.height, objects: [] });
  });
  coco.annotations?.forEach((a, i) => {
    const image = images.get(a.image_id as number);
    if (!image) throw new CamerasError(`${source}: annotations[${i}] names image_id ${a.image_id}, which is not in 'images'`);
    const className = names.get(a.category_id as number);
    if (className === undefined)
      throw new CamerasError(`${source}: annotations[${i}] names category_id ${a.category_id}, which is not in 'categories'`);
    const [x, y, w, h] = a.bbox ?? [];
    if (![x, y, w, h].every((v) => typeof v === 'number'))
      throw new CamerasError(`${source}: annotations[${i}] needs 'bbox' [x, y, width, height]`);
    const polygons = Array.isArray(a.segmentation)
      ? (a.segmentation as number[][]).filter((p) => Array.isArray(p) && p.length >= 6)
      : undefined;
    const runs =
      a.segmentation && typeof a.segmentation === 'object' && !Array.isArray(a.segmentation)
        ? runsOf(a.segmentation, source, i)
        : undefined;
    image.objects.push({
      className,
      box: {
        xmin: Math.floor(x as number),
        ymin: Math.floor(y as number),
        xmax: Math.ceil((x as number) + (w as number)) - 1,
        ymax: Math.ceil((y as number) + (h as number)) - 1,
      },
      difficult: false,
      ...(polygons?.length ? { polygons } : {}),
      ...(runs ? { runs } : {}),
    });
  });
  return [...images.values()];
}
