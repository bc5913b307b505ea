import { CamerasError } from '../errors.js';

/** One object of an annotation: its class, its box (pixels, inclusive, 0-based) and VOC's 'difficult' flag. */
export interface AnnotatedObject {
  className: string;
  box: { xmin: number; ymin: number; xmax: number; ymax: number };
  difficult: boolean;
  /** COCO polygons, in pixels: [x1, y1, x2, y2, ...] each. */
  polygons?: number[][];
  /** A COCO run-length mask (crowd regions): run lengths alternating 0s and 1s over the column-major pixels. */
  runs?: { counts: number[]; height: number; width: number };
}

export interface Annotation {
  /** The image's file name as the annotation names it. */
  file: string;
  width: number;
  height: number;
  objects: AnnotatedObject[];
}

function tag(xml: string, name: string): string | undefined {
  // Attributes allowed (LabelImg writes <annotation verified="yes">).
  return new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`).exec(xml)?.[1]?.trim();
}

/**
 * A Pascal VOC annotation (`<annotation>` with `filename`, `size/width`, `size/height` and `object`s of `name`,
 * `difficult` and `bndbox` in 1-based inclusive pixels, as VOC writes them). A missing or non-numeric field is an
 * error naming the file and the field.
 */
export function parseVoc(xml: string, source: string): Annotation {
  const annotation = tag(xml, 'annotation');
  if (annotation === undefined) throw new CamerasError(`${source} is not a VOC annotation: no <annotation> element`);
  const field = (text: string, name: string, where: string) => {
    const value = tag(text, name);
    if (value === undefined || value === '') throw new CamerasError(`${source}: ${where}<${name}> is missing`);
    return value;
  };
  const number = (text: string, name: string, where: string) => {
    const value = Number(field(text, name, where));
    if (!Number.isFinite(value)) throw new CamerasError(`${source}: ${where}<${name}> is not a number`);
    return value;
  };
  const size = tag(annotation, 'size');
  if (size === undefined) throw new CamerasError(`${source}: <size> is missing`);
  const objects = [...annotation.matchAll(/<object(?:\s[^>]*)?>([\s\S]*?)<\/object>/g)].map((match, i) => {
    const object = match[1] as string;
    const where = `object ${i + 1} `;
    const box = tag(object, 'bndbox');
    if (box === undefined) throw new CamerasError(`${source}: ${where}<bndbox> is missing`);
    // Some tools write fractional pixels: rounded, as the box is a set of whole pixels.
    const coordinate = (name: string) => Math.round(number(box, name, `${where}bndbox `)) - 1;
    return {
      className: field(object, 'name', where),
      box: { xmin: coordinate('xmin'), ymin: coordinate('ymin'), xmax: coordinate('xmax'), ymax: coordinate('ymax') },
      difficult: Number(tag(object, 'difficult') ?? 0) === 1,
    };
  });
  return {
    file: field(annotation, 'filename', ''),
    width: number(size, 'width', 'size '),
    height: number(size, 'height', 'size '),
    objects,
  };
}

/** A VOC annotation as XML, the way VOC writes it (1-based inclusive boxes). */
export function formatVoc(annotation: Annotation): string {
  const objects = annotation.objects
    .map(
      (o) =>
        `  <object>\n    <name>${o.className}</name>\n    <difficult>${o.difficult ? 1 : 0}</difficult>\n    <bndbox>\n      <xmin>${o.box.xmin + 1}</xmin>\n      <ymin>${o.box.ymin + 1}</ymin>\n      <xmax>${o.box.xmax + 1}</xmax>\n      <ymax>${o.box.ymax + 1}</ymax>\n    </bndbox>\n  </object>\n`,
    )
    .join('');
  return `<annotation>\n  <filename>${annotation.file}</filename>\n  <size>\n    <width>${annotation.width}</width>\n    <height>${annotation.height}</height>\n    <depth>3</depth>\n  </size>\n${objects}</annotation>\n`;
}
