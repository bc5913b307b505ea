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
