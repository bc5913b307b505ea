import sharp from 'sharp';
import { resizeBilinear } from '../engine/resize.js';
import type { RgbImage } from '../io/preprocess.js';
import type { SaliencyMap } from '../methods/cameras.js';
import { type ColormapName, renderHeat } from './colormap.js';

/**
 * A PNG of the saliency map: blended over `image` at the image's own size when given (the map is
 * resized bilinearly to it), else the coloured map alone.
 */
export async function overlayPng(
  saliency: SaliencyMap,
  image?: RgbImage,
  options: { colormap?: ColormapName; opacity?: number } = {},
): Promise<Uint8Array> {
  const width = image?.width ?? saliency.width;
  const height = image?.height ?? saliency.height;
  const map =
    width === saliency.width && height === saliency.height
      ? saliency.map
      : resizeBilinear(saliency.map, [1, 1, saliency.height, saliency.width], height, width);
  const pixels = renderHeat(map, width, height, { ...options, image: image?.data });
  const png = await sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}
