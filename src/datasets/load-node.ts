import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { CamerasError } from '../errors.js';
import { parseCoco } from './coco.js';
import { type Annotation, parseVoc } from './voc.js';

/** An annotated image: where its file is, and what is in it. */
export interface DatasetItem {
  image: string;
  annotation: Annotation;
}

const IMAGES = ['.jpg', '.jpeg', '.png', '.webp'];

/**
 * A data set from disk: a COCO annotation file (.json; images beside it or in `images/`), a VOC folder
 * (`Annotations/*.xml` and `JPEGImages/`), or a folder of images with a VOC `.xml` beside each. Items come sorted
 * by image name. A folder with no annotated image is an error in one line.
 */
export async function loadDataset(path: string): Promise<DatasetItem[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new CamerasError(`cannot read data set ${path}: it does not exist`);
  if (info.isFile()) {
    if (extname(path).toLowerCase() !== '.json') throw new CamerasError(`${path}: give a COCO .json file or a folder of VOC annotations`);
    const folder = dirname(path);
    const items: DatasetItem[] = [];
    for (const annotation of parseCoco(await readFile(path, 'utf8'), path)) {
      const candidates = [join(folder, annotation.file), join(folder, 'images', annotation.file)];
      const image = (await Promise.all(candidates.map(async (c) => ((await stat(c).catch(() => undefined)) ? c : undefined)))).find(
        Boolean,
      );
      if (!image) throw new CamerasError(`${path} names image ${annotation.file}, which is neither beside it nor in images/`);
      items.push({ image, annotation });
    }
    return items.sort((a, b) => a.image.localeCompare(b.image));
  }
  const voc = await stat(join(path, 'Annotations')).catch(() => undefined);
  const annotations = voc?.isDirectory() ? join(path, 'Annotations') : path;
  const imagesFolder = voc?.isDirectory() ? join(path, 'JPEGImages') : path;
  const names = (await readdir(annotations)).filter((n) => n.toLowerCase().endsWith('.xml')).sort();
  if (names.length === 0) throw new CamerasError(`data set ${path} has no VOC annotations (.xml in the folder or in Annotations/)`);
  const items: DatasetItem[] = [];
  for (const name of names) {
    const file = join(annotations, name);
    const annotation = parseVoc(await readFile(file, 'utf8'), file);
    const stem = basename(name, '.xml');
    const candidates = [annotation.file, ...IMAGES.map((e) => `${stem}${e}`)].map((n) => join(imagesFolder, n));
    let image: string | undefined;
    for (const candidate of candidates) if (!image && (await stat(candidate).catch(() => undefined))?.isFile()) image = candidate;
    if (!image) throw new CamerasError(`${file} names image ${annotation.file}, which is not in ${imagesFolder}`);
    items.push({ image, annotation });
  }
  return items;
}
