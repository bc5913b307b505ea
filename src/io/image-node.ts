import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { RegionMask } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { RgbImage } from './preprocess.js';

/**
 * Largest image we decode: 100 megapixels (about 300 MB of RGB), beyond which memory, not quality,
 * decides; CAMERAS_MAX_PIXELS lowers or raises it.
 */
export function maxPixels(): number {
  const set = Number(process.env.CAMERAS_MAX_PIXELS);
  return set > 0 ? set : 100_000_000;
}

/**
 * Decodes a JPEG, PNG or WebP file to RGB bytes, turned upright by its EXIF orientation (as OpenCV's
 * imread does), transparency composited on white. Node only: browsers decode with a canvas.
 */
export async function readImage(path: string): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new CamerasError(
      `cannot read image ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`,
    );
  }
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels() })
      .rotate()
      // Transparent pixels become white, as an image viewer shows them, not the colour hidden under alpha 0.
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
  } catch (error) {
    const message = (error as Error).message;
    if (/pixel limit/i.test(message)) {
      throw new CamerasError(
        `image ${path} is larger than the limit of ${maxPixels() / 1e6} megapixels; downscale it first (or raise CAMERAS_MAX_PIXELS)`,
      );
    }
    throw new CamerasError(`cannot decode image ${path} (${message.split('\n')[0]}); use a JPEG, PNG or WebP file`);
  }
}

/**
 * A region's mask from a picture (PNG, JPEG, WebP): its pixels as grey levels, non-zero inside. The mask may have
 * any size; it is resized to the explained output's at each scale.
 */
export async function readMask(path: string): Promise<RegionMask> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new CamerasError(
      `cannot read mask ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`,
    );
  }
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels() }).greyscale().raw().toBuffer({ resolveWithObject: true });
    const grey = new Uint8Array(info.width * info.height);
    for (let p = 0; p < grey.length; p++) grey[p] = data[p * info.channels] as number;
    if (!grey.some((v) => v !== 0))
      throw new CamerasError(`mask ${path} is all zero: no pixel is inside the region; draw the region in non-zero pixels`);
    return { data: grey, width: info.width, height: info.height };
  } catch (error) {
    if (error instanceof CamerasError) throw error;
    throw new CamerasError(`cannot decode mask ${path} (${(error as Error).message.split('\n')[0]}); use a PNG, JPEG or WebP file`);
  }
}
