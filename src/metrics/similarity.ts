/** Ranks 1..n, ties given their average rank (scipy.stats.rankdata's 'average'). */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const order = Array.from({ length: values.length }, (_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const ranks = new Float64Array(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1] as number] === values[order[i] as number]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = rank;
    i = j + 1;
  }
  return ranks;
}

/** Pearson's correlation; NaN when either side is constant (as scipy returns). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] as number;
    mb += b[i] as number;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = (a[i] as number) - ma;
    const db = (b[i] as number) - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
}

/** Spearman's rank correlation (scipy.stats.spearmanr): Pearson's on average ranks. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`spearman: ${a.length} values against ${b.length}`);
  return pearson(averageRanks(a), averageRanks(b));
}

/** A 1-D Gaussian (sigma, truncated at `truncate` sigma) as scipy.ndimage.gaussian_filter builds it, normalised. */
function gaussianTaps(sigma: number, truncate: number): Float64Array {
  const radius = Math.floor(truncate * sigma + 0.5);
  const taps = Float64Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)));
  const total = taps.reduce((s, v) => s + v, 0);
  return taps.map((v) => v / total);
}

/** scipy.ndimage's separable filter with 'reflect' borders (d c b a | a b c d | d c b a). */
function filterReflect(image: Float64Array, height: number, width: number, taps: Float64Array): Float64Array {
  const radius = (taps.length - 1) / 2;
  const reflect = (n: number, size: number) => {
    const period = 2 * size;
    const m = ((n % period) + period) % period;
    return m < size ? m : period - 1 - m;
  };
  const rows = new Float64Array(image.length);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let s = 0;
      for (let k = -radius; k <= radius; k++) s += (taps[k + radius] as number) * (image[y * width + reflect(x + k, width)] as number);
      rows[y * width + x] = s;
    }
  const out = new Float64Array(image.length);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let s = 0;
      for (let k = -radius; k <= radius; k++) s += (taps[k + radius] as number) * (rows[reflect(y + k, height) * width + x] as number);
      out[y * width + x] = s;
    }
  return out;
}

/**
 * Structural similarity as scikit-image's `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False, data_range=dataRange)` computes it: Gaussian-weighted local means, variances and
 * covariance, SSIM = ((2 mu_a mu_b + C1)(2 s_ab + C2)) / ((mu_a^2 + mu_b^2 + C1)(s_a + s_b + C2)),
 * C1 = (0.01 R)^2, C2 = (0.03 R)^2, averaged over the image less a border of the window's half width (5 px).
 */
export function ssim(a: ArrayLike<number>, b: ArrayLike<number>, height: number, width: number, dataRange = 1): number {
  const taps = gaussianTaps(1.5, 3.5);
  const f = (v: Float64Array) => filterReflect(v, height, width, taps);
  const A = Float64Array.from(a);
  const B = Float64Array.from(b);
  const muA = f(A);
  const muB = f(B);
  const aa = f(A.map((v) => v * v));
  const bb = f(B.map((v) => v * v));
  const ab = f(A.map((v, i) => v * (B[i] as number)));
  const c1 = (0.01 * dataRange) ** 2;
  const c2 = (0.03 * dataRange) ** 2;
  const pad = (taps.length - 1) / 2;
  let sum = 0;
  let count = 0;
  for (let y = pad; y < height - pad; y++)
    for (let x = pad; x < width - pad; x++) {
      const i = y * width + x;
      const ma = muA[i] as number;
      const mb = muB[i] as number;
      const va = (aa[i] as number) - ma * ma;
      const vb = (bb[i] as number) - mb * mb;
      const cov = (ab[i] as number) - ma * mb;
      sum += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      count++;
    }
  return sum / count;
}

/**
 * Histogram of oriented gradients as scikit-image's `hog(image, orientations=9, pixels_per_cell=(cell, cell),
 * cells_per_block=(3, 3), block_norm='L2-Hys')` computes it on a float32 map: central differences (0 on the
 * border) in float32, unsigned orientations in `orientations` bins, each cell's histogram the mean magnitude per
 * bin (summed in float32 as its Cython does), blocks of 3 x 3 cells L2-normalised, clipped at 0.2, normalised again.
 */
export function hog(map: ArrayLike<number>, height: number, width: number, cell = 16, orientations = 9): Float64Array {
  const f = Math.fround;
  const gRow = new Float64Array(height * width);
  const gCol = new Float64Array(height * width);
  for (let y = 1; y < height - 1; y++)
    for (let x = 0; x < width; x++) gRow[y * width + x] = f(f(map[(y + 1) * width + x] as number) - f(map[(y - 1) * width + x] as number));
  for (let y = 0; y < height; y++)
    for (let x = 1; x < width - 1; x++) gCol[y * width + x] = f(f(map[y * width + x + 1] as number) - f(map[y * width + x - 1] as number));
  const magnitude = gRow.map((r, i) => Math.hypot(gCol[i] as number, r));
  const orientation = gRow.map((r, i) => ((((Math.atan2(r, gCol[i] as number) * 180) / Math.PI) % 180) + 180) % 180);
  const cellsRow = Math.floor(height / cell);
  const cellsCol = Math.floor(width / cell);
  const histogram = new Float64Array(cellsRow * cellsCol * orientations);
  const perBin = f(180 / orientations);
  for (let o = 0; o < orientations; o++) {
    const start = f(perBin * (o + 1));
    const end = f(perBin * o);
    for (let cr = 0; cr < cellsRow; cr++)
      for (let cc = 0; cc < cellsCol; cc++) {
        let total = 0;
        for (let y = cr * cell; y < (cr + 1) * cell; y++)
          for (let x = cc * cell; x < (cc + 1) * cell; x++) {
            const angle = orientation[y * width + x] as number;
            if (angle < start && angle >= end) total = f(total + (magnitude[y * width + x] as number));
          }
        histogram[(cr * cellsCol + cc) * orientations + o] = f(total / (cell * cell));
      }
  }
  const blocksRow = cellsRow - 2;
  const blocksCol = cellsCol - 2;
  const out = new Float64Array(Math.max(0, blocksRow * blocksCol * 9 * orientations));
  let at = 0;
  const eps2 = 1e-10;
  for (let br = 0; br < blocksRow; br++)
    for (let bc = 0; bc < blocksCol; bc++) {
      const block: number[] = [];
      for (let r = br; r < br + 3; r++)
        for (let c = bc; c < bc + 3; c++)
          for (let o = 0; o < orientations; o++) block.push(histogram[(r * cellsCol + c) * orientations + o] as number);
      const norm1 = Math.sqrt(block.reduce((s, v) => s + v * v, 0) + eps2);
      const clipped = block.map((v) => Math.min(v / norm1, 0.2));
      const norm2 = Math.sqrt(clipped.reduce((s, v) => s + v * v, 0) + eps2);
      for (const v of clipped) out[at++] = v / norm2;
    }
  return out;
}
