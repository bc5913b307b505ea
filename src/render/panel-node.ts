import sharp, { type OverlayOptions } from 'sharp';
import type { SaliencyMap } from '../engine/postprocess.js';
import { resizeBilinear } from '../engine/resize.js';
import type { RgbImage } from '../io/preprocess.js';
import { type ColormapName, colormapTable, renderHeat } from './colormap.js';

export interface PanelRow {
  /** Shown above the row, e.g. "nsfwjs:mobilenet_v2: Neutral (p = 0.93)". */
  title: string;
  image: RgbImage;
  map: SaliencyMap;
  /** Maps of single resolutions, shown after the overlay so a reader sees what each scale adds. */
  scales?: { resolution: number; map: SaliencyMap; caption?: string }[];
  /** Boxes drawn over the overlay (a detector's explained detection), in the image's pixels. */
  boxes?: LabelledBox[];
}

/** A box `[x1, y1, x2, y2]` in an image's pixels, and what it is. */
export interface LabelledBox {
  box: readonly [number, number, number, number];
  label: string;
}

export interface PictureOptions {
  colormap?: ColormapName;
  /** Weight of the heat over the photo, 0..1 (default 0.5). */
  opacity?: number;
}

const TILE = 224;
const GAP = 8;
const TITLE = 26;
const CAPTION = 18;
const BAR = 14;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function textSvg(text: string, width: number, height: number, size: number, anchor: 'start' | 'middle' = 'start'): Buffer {
  const x = anchor === 'start' ? 2 : width / 2;
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><text x="${x}" y="${height - 6}" font-family="DejaVu Sans, sans-serif" font-size="${size}" text-anchor="${anchor}" fill="#222">${escapeXml(text)}</text></svg>`,
  );
}

function resizeMap(map: SaliencyMap, width: number, height: number): Float32Array {
  return map.width === width && map.height === height ? map.map : resizeBilinear(map.map, [1, 1, map.height, map.width], height, width);
}

async function resizeImage(image: RgbImage, width: number, height: number): Promise<Uint8Array> {
  if (image.width === width && image.height === height) return image.data;
  const out = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The boxes as an SVG layer of `width x height`, scaled from an image of `imageWidth x imageHeight`. */
function boxesSvg(boxes: readonly LabelledBox[], width: number, height: number, imageWidth: number, imageHeight: number): Buffer {
  const sx = width / imageWidth;
  const sy = height / imageHeight;
  const shapes = boxes.map(({ box, label }) => {
    const [x1, y1, x2, y2] = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy];
    const textY = y1 > 14 ? y1 - 3 : y2 + 12;
    return `<rect x="${x1}" y="${y1}" width="${x2 - x1}" height="${y2 - y1}" fill="none" stroke="#fff" stroke-width="3"/><rect x="${x1}" y="${y1}" width="${x2 - x1}" height="${y2 - y1}" fill="none" stroke="#e6007e" stroke-width="1.5"/><text x="${x1 + 1}" y="${textY}" font-family="DejaVu Sans, sans-serif" font-size="12" fill="#fff" stroke="#000" stroke-width="2.5" paint-order="stroke">${escapeXml(label)}</text>`;
  });
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`);
}

/** A horizontal colour bar `width` wide with "low" and "high" under its ends. */
function colourBar(width: number, colormap: ColormapName): { pixels: Uint8Array; width: number; height: number } {
  const table = colormapTable(colormap);
  const pixels = new Uint8Array(width * BAR * 3);
  for (let x = 0; x < width; x++) {
    const level = Math.round((x / Math.max(width - 1, 1)) * 255);
    for (let y = 0; y < BAR; y++) pixels.set(table.subarray(3 * level, 3 * level + 3), (y * width + x) * 3);
  }
  return { pixels, width, height: BAR };
}

type Layer = OverlayOptions;

function raw(pixels: Uint8Array, width: number, height: number, left: number, top: number): Layer {
  return { input: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), raw: { width, height, channels: 3 }, left, top };
}

/** The colour bar with its labels, placed at `top` and spanning `width` from `left`. */
function barLayers(width: number, left: number, top: number, colormap: ColormapName): Layer[] {
  const bar = colourBar(width, colormap);
  return [
    raw(bar.pixels, bar.width, bar.height, left, top),
    { input: textSvg('low saliency', width / 2, CAPTION, 12), left, top: top + BAR },
    { input: textSvg('high saliency', width / 2, CAPTION, 12, 'middle'), left: left + width / 2 + 20, top: top + BAR },
  ];
}

/**
 * One PNG with a row per explanation: the photo | the heatmap | the heatmap over the photo [| the map
 * of each single resolution], each row titled, and a colour bar at the bottom.
 */
export async function renderPanel(rows: PanelRow[], options: PictureOptions = {}): Promise<Uint8Array> {
  const colormap = options.colormap ?? 'turbo';
  const layers: Layer[] = [];
  let top = GAP;
  let width = 0;
  for (const row of rows) {
    const tileW = Math.max(32, Math.round((TILE * row.image.width) / row.image.height));
    const photo = await resizeImage(row.image, tileW, TILE);
    const map = resizeMap(row.map, tileW, TILE);
    layers.push({ input: textSvg(row.title, Math.max(3 * tileW, 400), TITLE, 15), left: GAP, top });
    top += TITLE;
    let left = GAP;
    const tiles = [
      photo,
      renderHeat(map, tileW, TILE, { colormap }),
      renderHeat(map, tileW, TILE, { colormap, opacity: options.opacity, image: photo }),
    ];
    for (const [i, tile] of tiles.entries()) {
      layers.push(raw(tile, tileW, TILE, left, top));
      if (i === 2 && row.boxes?.length)
        layers.push({ input: boxesSvg(row.boxes, tileW, TILE, row.image.width, row.image.height), left, top });
      left += tileW + GAP;
    }
    for (const scale of row.scales ?? []) {
      layers.push(raw(renderHeat(resizeMap(scale.map, tileW, TILE), tileW, TILE, { colormap }), tileW, TILE, left, top));
      layers.push({ input: textSvg(scale.caption ?? `${scale.resolution} px only`, tileW, CAPTION, 12, 'middle'), left, top: top + TILE });
      left += tileW + GAP;
    }
    width = Math.max(width, left);
    top += TILE + (row.scales?.length ? CAPTION : 0) + GAP;
  }
  const barWidth = Math.min(360, width - 2 * GAP);
  layers.push(...barLayers(barWidth, GAP, top, colormap));
  const height = top + BAR + CAPTION + GAP;
  const png = await sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(layers)
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** The heatmap over the photo at the photo's own size, with a colour bar under it when asked. */
export async function overlayWithBar(
  saliency: SaliencyMap,
  image: RgbImage | undefined,
  options: PictureOptions & { colorbar?: boolean; boxes?: readonly LabelledBox[] },
): Promise<Uint8Array> {
  const colormap = options.colormap ?? 'turbo';
  const width = image?.width ?? saliency.width;
  const height = image?.height ?? saliency.height;
  const pixels = renderHeat(resizeMap(saliency, width, height), width, height, { colormap, opacity: options.opacity, image: image?.data });
  const boxes: Layer[] = options.boxes?.length ? [{ input: boxesSvg(options.boxes, width, height, width, height), left: 0, top: 0 }] : [];
  let picture = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels: 3 } });
  if (options.colorbar) {
    const barWidth = Math.max(Math.min(360, width - 2 * GAP), 40);
    picture = sharp({
      create: { width, height: height + BAR + CAPTION + 2 * GAP, channels: 3, background: { r: 255, g: 255, b: 255 } },
    }).composite([raw(pixels, width, height, 0, 0), ...boxes, ...barLayers(barWidth, GAP, height + GAP, colormap)]);
  } else if (boxes.length) picture = sharp(await picture.png().toBuffer()).composite(boxes);
  const png = await picture.png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}
