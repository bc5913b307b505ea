import { CamerasError } from '../errors.js';
import type { Annotation } from './voc.js';

interface CocoFile {
  images?: { id?: number; file_name?: string; width?: number; height?: number }[];
  annotations?: { image_id?: number; category_id?: number; bbox?: number[]; segmentation?: unknown; iscrowd?: number }[];
  categories?: { id?: number; name?: string }[];
}

/**
 * COCO detection annotations (`images`, `annotations` with `bbox` [x, y, w, h] and polygon `segmentation`,
 * `categories`) as one `Annotation` per image. Crowd (RLE) masks fall back to their box. A file that is not JSON,
 * or a missing field, is an error naming the file and the field.
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
    const polygons =
      Array.isArray(a.segmentation) && !a.iscrowd
        ? (a.segmentation as number[][]).filter((p) => Array.isArray(p) && p.length >= 6)
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
    });
  });
  return [...images.values()];
}
