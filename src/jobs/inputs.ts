import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { CamerasError } from '../errors.js';
import { METHODS } from '../methods/registry.js';

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp']);

/** What this tool names its pictures `<photo>.<what>.png` after: every method, compare's grid and the attack's images. */
const OWN_PICTURES = new RegExp(`\\.(${[...METHODS, 'compare', 'adversarial', 'plain', 'perturbation', 'attack'].join('|')})\\.png$`, 'i');

/** Pictures this tool wrote (`photo.cameras.png`, `photo.gradcam.png`, batch overlays `photo.gradcam.<key>.png`, ...): a rerun over a folder does not explain them. */
function isOwnOutput(name: string): boolean {
  return OWN_PICTURES.test(name) || /\.[a-z0-9_-]+\.[0-9a-f]{12}\.png$/i.test(name);
}

/** Files, folders (their images, sorted, our own outputs left out) and simple globs (`photos/*.jpg`) to image paths. */
export async function expandImages(specs: string[]): Promise<string[]> {
  const paths: string[] = [];
  for (const spec of specs) {
    if (spec.includes('*') || spec.includes('?')) {
      const folder = dirname(spec);
      const pattern = new RegExp(
        `^${basename(spec)
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
        'i',
      );
      const names = await readdir(folder).catch(() => {
        throw new CamerasError(`cannot read folder ${folder} of pattern ${spec}; check the path`);
      });
      const matched = names.filter((n) => pattern.test(n) && !isOwnOutput(n)).sort();
      if (matched.length === 0) throw new CamerasError(`no file matches ${spec}`);
      paths.push(...matched.map((n) => join(folder, n)));
      continue;
    }
    const info = await stat(spec).catch(() => undefined);
    if (info?.isDirectory()) {
      const names = (await readdir(spec)).filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase()) && !isOwnOutput(n)).sort();
      if (names.length === 0) throw new CamerasError(`folder ${spec} has no JPEG, PNG or WebP image`);
      paths.push(...names.map((n) => join(spec, n)));
    } else {
      paths.push(spec);
    }
  }
  return paths;
}

/** One input of a batch: an image and, from a manifest, the class to explain (else the top-1). */
export interface BatchInput {
  image: string;
  class?: string;
}

/**
 * A manifest's images: `.csv` with a header naming an `image` column (and optionally `class`), or `.jsonl` with
 * one `{"image": ..., "class": ...}` per line; paths relative to the manifest's folder.
 */
export async function readManifest(path: string): Promise<BatchInput[]> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new CamerasError(`cannot read manifest ${path}: ${error.code ?? error.message}; check the path`);
  });
  const folder = dirname(resolve(path));
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const entries: BatchInput[] = [];
  if (extname(path).toLowerCase() === '.jsonl') {
    lines.forEach((line, i) => {
      let entry: { image?: unknown; class?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        throw new CamerasError(`${path} line ${i + 1} is not JSON; write one {"image": "...", "class": "..."} per line`);
      }
      if (typeof entry !== 'object' || entry === null || typeof entry.image !== 'string')
        throw new CamerasError(`${path} line ${i + 1} has no "image" path`);
      entries.push({ image: resolve(folder, entry.image), ...(entry.class !== undefined ? { class: String(entry.class) } : {}) });
    });
    return entries;
  }
  const header = (lines[0] ?? '').split(',').map((h) => h.trim().toLowerCase());
  const imageColumn = header.indexOf('image');
  const classColumn = header.indexOf('class');
  if (imageColumn < 0) throw new CamerasError(`${path}: the first line must be a header with an 'image' column (and optionally 'class')`);
  for (const line of lines.slice(1)) {
    const cells = line.split(',').map((c) => c.trim());
    const image = cells[imageColumn];
    if (!image) continue;
    const cls = classColumn >= 0 ? cells[classColumn] : undefined;
    entries.push({ image: resolve(folder, image), ...(cls ? { class: cls } : {}) });
  }
  return entries;
}

/** A batch's inputs: manifests (.csv, .jsonl) read, folders and globs expanded. */
export async function batchInputs(specs: string[]): Promise<BatchInput[]> {
  const inputs: BatchInput[] = [];
  for (const spec of specs) {
    if (/\.(csv|jsonl)$/i.test(spec)) inputs.push(...(await readManifest(spec)));
    else inputs.push(...(await expandImages([spec])).map((image) => ({ image: resolve(image) })));
  }
  if (inputs.length === 0) throw new CamerasError('no images to run; give images, folders, globs or a manifest');
  return inputs;
}
