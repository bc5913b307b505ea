/**
 * Colour maps for saliency pictures. Turbo (Google's rainbow replacement) from its published polynomial
 * fit; jet as MATLAB defines it; viridis and inferno interpolated between matplotlib's ten evenly spaced
 * samples of each.
 */
export const COLORMAPS_NAMES = ['turbo', 'jet', 'viridis', 'inferno'] as const;
export type ColormapName = (typeof COLORMAPS_NAMES)[number];

function clamp01(v: number): number {
  return v < 0 ? 0 : Math.min(v, 1);
}

function turbo(t: number): [number, number, number] {
  const x = clamp01(t);
  const x2 = x * x;
  const x3 = x2 * x;
  const x4 = x3 * x;
  const x5 = x4 * x;
  const r = 0.13572138 + 4.6153926 * x - 42.66032258 * x2 + 132.13108234 * x3 - 152.94239396 * x4 + 59.28637943 * x5;
  const g = 0.09140261 + 2.19418839 * x + 4.84296658 * x2 - 14.18503333 * x3 + 4.27729857 * x4 + 2.82956604 * x5;
  const b = 0.1066733 + 12.64194608 * x - 60.58204836 * x2 + 110.36276771 * x3 - 89.90310912 * x4 + 27.34824973 * x5;
  return [clamp01(r), clamp01(g), clamp01(b)];
}

function jet(t: number): [number, number, number] {
  const x = clamp01(t);
  return [clamp01(1.5 - Math.abs(4 * x - 3)), clamp01(1.5 - Math.abs(4 * x - 2)), clamp01(1.5 - Math.abs(4 * x - 1))];
}

function stops(hex: string[]): (t: number) => [number, number, number] {
  const colours = hex.map((h) => [1, 3, 5].map((i) => Number.parseInt(h.slice(i, i + 2), 16) / 255) as [number, number, number]);
  return (t) => {
    const x = clamp01(t) * (colours.length - 1);
    const i = Math.min(Math.floor(x), colours.length - 2);
    const f = x - i;
    const a = colours[i] as [number, number, number];
    const b = colours[i + 1] as [number, number, number];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  };
}

const viridis = stops(['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725']);
const inferno = stops(['#000004', '#1b0c41', '#4a0c6b', '#781c6d', '#a52c60', '#cf4446', '#ed6925', '#fb9b06', '#f7d13d', '#fcffa4']);

const COLORMAPS: Record<ColormapName, (t: number) => [number, number, number]> = { turbo, jet, viridis, inferno };

/** A 256-entry RGB lookup table. */
export function colormapTable(name: ColormapName): Uint8Array {
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const [r, g, b] = COLORMAPS[name](i / 255);
    table[3 * i] = Math.round(r * 255);
    table[3 * i + 1] = Math.round(g * 255);
    table[3 * i + 2] = Math.round(b * 255);
  }
  return table;
}

/**
 * Colours a [0, 1] map (`width x height`) and, given an RGB image of the same size, blends it in with
 * `opacity` for the heat: returns RGB bytes.
 */
export function renderHeat(
  map: Float32Array,
  width: number,
  height: number,
  options: { colormap?: ColormapName; opacity?: number; image?: Uint8Array } = {},
): Uint8Array {
  const table = colormapTable(options.colormap ?? 'turbo');
  const opacity = options.image ? (options.opacity ?? 0.5) : 1;
  const out = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    const level = Math.round(clamp01(map[p] as number) * 255);
    for (let c = 0; c < 3; c++) {
      const heat = table[3 * level + c] as number;
      const base = options.image ? (options.image[3 * p + c] as number) : 0;
      out[3 * p + c] = Math.round(opacity * heat + (1 - opacity) * base);
    }
  }
  return out;
}
