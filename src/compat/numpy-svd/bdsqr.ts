/**
 * LAPACK's small-bidiagonal SVD (dlasdq calling dbdsqr: implicit zero-shift and shifted QR sweeps), tracking
 * only the left singular vectors. Divide and conquer (dbdsdc) hands every leaf of its tree to this routine, so
 * the sign LAPACK gives a leaf's singular vector is the sign this reproduces, rotation by rotation.
 */

const EPS = 2 ** -53;
const SAFE_MIN = 2 ** -1022;

/** dlartg (LAPACK >= 3.10): c >= 0, r carries the sign of f. */
export function givens(f: number, g: number): [c: number, s: number, r: number] {
  if (g === 0) return [1, 0, f];
  if (f === 0) return [0, g > 0 ? 1 : -1, Math.abs(g)];
  const f1 = Math.abs(f);
  const g1 = Math.abs(g);
  const inRange = f1 > 1.49e-154 && f1 < 4.7e153 && g1 > 1.49e-154 && g1 < 4.7e153;
  const d = inRange ? Math.sqrt(f * f + g * g) : Math.hypot(f, g);
  const r = f > 0 ? d : -d;
  return [f1 / d, g / r, r];
}

/** Fortran's SIGN(a, b): |a| with b's sign, -0 counting as negative. */
export const sign = (a: number, b: number): number => (b > 0 || Object.is(b, 0) ? Math.abs(a) : -Math.abs(a));

/**
 * The Givens sweep LAPACK uses to move a bidiagonal's off-diagonal to the other side (rows i, i+1 or
 * columns i, i+1, i < count - 1): each rotation (c, s) is handed to `rotated` for the vectors it moves.
 */
export function sweepOffDiagonal(
  d: Float64Array,
  e: Float64Array,
  count: number,
  rotated?: (i: number, c: number, s: number) => void,
): void {
  for (let i = 0; i < count - 1; i++) {
    const [c, s, r] = givens(d[i] as number, e[i] as number);
    d[i] = r;
    e[i] = s * (d[i + 1] as number);
    d[i + 1] = c * (d[i + 1] as number);
    rotated?.(i, c, s);
  }
}

/** dlas2: the singular values of [[f, g], [0, h]] (the shift); returns the smaller. */
function smallerSingularValue(f: number, g: number, h: number): number {
  const fa = Math.abs(f);
  const ga = Math.abs(g);
  const ha = Math.abs(h);
  const fhmn = Math.min(fa, ha);
  const fhmx = Math.max(fa, ha);
  if (fhmn === 0) return 0;
  if (ga < fhmx) {
    const as = 1 + fhmn / fhmx;
    const at = (fhmx - fhmn) / fhmx;
    const au = (ga / fhmx) ** 2;
    return fhmn * (2 / (Math.sqrt(as * as + au) + Math.sqrt(at * at + au)));
  }
  const au = fhmx / ga;
  if (au === 0) return (fhmn * fhmx) / ga;
  const as = 1 + fhmn / fhmx;
  const at = (fhmx - fhmn) / fhmx;
  const c = 1 / (Math.sqrt(1 + (as * au) ** 2) + Math.sqrt(1 + (at * au) ** 2));
  const ssmin = fhmn * c * au;
  return ssmin + ssmin;
}

/** dlasv2: SVD of [[f, g], [0, h]]; returns [ssmin, ssmax, cosl, sinl] (the left rotation is all we track). */
function twoByTwo(f: number, g: number, h: number): [ssmin: number, ssmax: number, cosl: number, sinl: number] {
  let ft = f;
  let fa = Math.abs(ft);
  let ht = h;
  let ha = Math.abs(h);
  let pmax = 1;
  const swap = ha > fa;
  if (swap) {
    pmax = 3;
    [ft, ht] = [ht, ft];
    [fa, ha] = [ha, fa];
  }
  const gt = g;
  const ga = Math.abs(gt);
  let ssmin: number;
  let ssmax: number;
  let clt = 1;
  let crt = 1;
  let slt = 0;
  let srt = 0;
  if (ga === 0) {
    ssmin = ha;
    ssmax = fa;
  } else {
    let gasmal = true;
    ssmin = 0;
    ssmax = 0;
    if (ga > fa) {
      pmax = 2;
      if (fa / ga < EPS) {
        gasmal = false;
        ssmax = ga;
        ssmin = ha > 1 ? fa / (ga / ha) : (fa / ga) * ha;
        clt = 1;
        slt = ht / gt;
        srt = 1;
        crt = ft / gt;
      }
    }
    if (gasmal) {
      const dd = fa - ha;
      let l = dd === fa ? 1 : dd / fa;
      const m = gt / ft;
      let t = 2 - l;
      const mm = m * m;
      const tt = t * t;
      const s = Math.sqrt(tt + mm);
      const r = l === 0 ? Math.abs(m) : Math.sqrt(l * l + mm);
      const a = 0.5 * (s + r);
      ssmin = ha / a;
      ssmax = fa * a;
      if (mm === 0) {
        t = l === 0 ? sign(2, ft) * sign(1, gt) : gt / sign(dd, ft) + m / t;
      } else {
        t = (m / (s + t) + m / (r + l)) * (1 + a);
      }
      l = Math.sqrt(t * t + 4);
      crt = 2 / l;
      srt = t / l;
      clt = (crt + srt * m) / a;
      slt = ((ht / ft) * srt) / a;
    }
  }
  const [csl, snl, csr, snr] = swap ? [srt, crt, slt, clt] : [clt, slt, crt, srt];
  let tsign: number;
  if (pmax === 1) tsign = sign(1, csr) * sign(1, csl) * sign(1, f);
  else if (pmax === 2) tsign = sign(1, snr) * sign(1, csl) * sign(1, g);
  else tsign = sign(1, snr) * sign(1, snl) * sign(1, h);
  return [sign(ssmin, tsign * sign(1, f) * sign(1, h)), sign(ssmax, tsign), csl, snl];
}

/** Left vectors (n x n, row-major) rotated on the right as dlasr('R', 'V', forward or backward) does. */
function rotateColumns(u: Float64Array, n: number, first: number, count: number, c: Float64Array, s: Float64Array, forward: boolean): void {
  for (let step = 0; step < count - 1; step++) {
    const j = forward ? step : count - 2 - step;
    const ct = c[j] as number;
    const st = s[j] as number;
    if (ct === 1 && st === 0) continue;
    for (let i = 0; i < n; i++) {
      const a = i * n + first + j;
      const temp = u[a + 1] as number;
      u[a + 1] = ct * temp - st * (u[a] as number);
      u[a] = st * temp + ct * (u[a] as number);
    }
  }
}

/**
 * The top left singular vector of the upper bidiagonal n x (n + sqre) matrix (diagonal d, superdiagonal e,
 * e[n - 1] the extra column when sqre = 1), as dlasdq returns it, with its singular value.
 */
export function smallBidiagonalTopLeft(
  diagonal: ArrayLike<number>,
  offDiagonal: ArrayLike<number>,
  n: number,
  sqre: 0 | 1,
): { vector: Float64Array; value: number } {
  const d = Float64Array.from({ length: n }, (_, i) => diagonal[i] as number);
  const e = Float64Array.from({ length: n }, (_, i) => (i < n - 1 + sqre ? (offDiagonal[i] as number) : 0));
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) u[i * n + i] = 1;
  if (sqre === 1) {
    // Non-square upper: rotate on the right to lower bidiagonal (moves only the right vectors), then back.
    sweepOffDiagonal(d, e, n);
    d[n - 1] = givens(d[n - 1] as number, e[n - 1] as number)[2];
    e[n - 1] = 0;
    const c = new Float64Array(n);
    const s = new Float64Array(n);
    sweepOffDiagonal(d, e, n, (i, cs, sn) => {
      c[i] = cs;
      s[i] = sn;
    });
    rotateColumns(u, n, 0, n, c, s, true);
  }
  upperQrIterations(d, e, u, n);
  let top = 0;
  for (let i = 1; i < n; i++) if (Math.abs(d[i] as number) > Math.abs(d[top] as number)) top = i;
  return { vector: Float64Array.from({ length: n }, (_, i) => u[i * n + top] as number), value: Math.abs(d[top] as number) };
}

/** dbdsqr's main loop on an upper bidiagonal (d, e), rotating the left vectors u. */
function upperQrIterations(d: Float64Array, e: Float64Array, u: Float64Array, n: number): void {
  if (n <= 1) return;
  const maxitr = 6;
  const tol = Math.max(10, Math.min(100, EPS ** -0.125)) * EPS;
  let smax = 0;
  for (let i = 0; i < n; i++) smax = Math.max(smax, Math.abs(d[i] as number));
  for (let i = 0; i < n - 1; i++) smax = Math.max(smax, Math.abs(e[i] as number));
  let sminoa = Math.abs(d[0] as number);
  if (sminoa !== 0) {
    let mu = sminoa;
    for (let i = 1; i < n; i++) {
      mu = Math.abs(d[i] as number) * (mu / (mu + Math.abs(e[i - 1] as number)));
      sminoa = Math.min(sminoa, mu);
      if (sminoa === 0) break;
    }
  }
  sminoa /= Math.sqrt(n);
  const thresh = Math.max(tol * sminoa, maxitr * (n * (n * SAFE_MIN)));
  const c1 = new Float64Array(n);
  const s1 = new Float64Array(n);
  const c2 = new Float64Array(n);
  const s2 = new Float64Array(n);
  const maxIterations = maxitr * n * n;
  let iter = 0;
  let oldll = -2;
  let oldm = -2;
  let idir = 0;
  // 0-based: m is the last row of the unconverged block, ll its first.
  let m = n - 1;
  main: while (m > 0) {
    if (iter > maxIterations) return;
    smax = Math.abs(d[m] as number);
    let ll = -1;
    for (let l = m - 1; l >= 0; l--) {
      const abss = Math.abs(d[l] as number);
      const abse = Math.abs(e[l] as number);
      if (abse <= thresh || abse === 0) {
        ll = l;
        break;
      }
      smax = Math.max(smax, abss, abse);
    }
    if (ll >= 0) {
      e[ll] = 0;
      if (ll === m - 1) {
        m -= 1;
        continue;
      }
    }
    ll += 1;
    if (ll === m - 1) {
      const [sigmn, sigmx, cosl, sinl] = twoByTwo(d[m - 1] as number, e[m - 1] as number, d[m] as number);
      d[m - 1] = sigmx;
      e[m - 1] = 0;
      d[m] = sigmn;
      for (let i = 0; i < n; i++) {
        const x = u[i * n + m - 1] as number;
        const y = u[i * n + m] as number;
        u[i * n + m - 1] = cosl * x + sinl * y;
        u[i * n + m] = cosl * y - sinl * x;
      }
      m -= 2;
      continue;
    }
    if (ll > oldm || m < oldll) idir = Math.abs(d[ll] as number) >= Math.abs(d[m] as number) ? 1 : 2;
    let smin: number;
    if (idir === 1) {
      if (Math.abs(e[m - 1] as number) <= tol * Math.abs(d[m] as number)) {
        e[m - 1] = 0;
        continue;
      }
      let mu = Math.abs(d[ll] as number);
      smin = mu;
      for (let l = ll; l <= m - 1; l++) {
        if (Math.abs(e[l] as number) <= tol * mu) {
          e[l] = 0;
          continue main;
        }
        mu = Math.abs(d[l + 1] as number) * (mu / (mu + Math.abs(e[l] as number)));
        smin = Math.min(smin, mu);
      }
    } else {
      if (Math.abs(e[ll] as number) <= tol * Math.abs(d[ll] as number)) {
        e[ll] = 0;
        continue;
      }
      let mu = Math.abs(d[m] as number);
      smin = mu;
      for (let l = m - 1; l >= ll; l--) {
        if (Math.abs(e[l] as number) <= tol * mu) {
          e[l] = 0;
          continue main;
        }
        mu = Math.abs(d[l] as number) * (mu / (mu + Math.abs(e[l] as number)));
        smin = Math.min(smin, mu);
      }
    }
    oldll = ll;
    oldm = m;
    let shift = 0;
    if (!(n * tol * (smin / smax) <= Math.max(EPS, 0.01 * tol))) {
      let sll: number;
      if (idir === 1) {
        sll = Math.abs(d[ll] as number);
        shift = smallerSingularValue(d[m - 1] as number, e[m - 1] as number, d[m] as number);
      } else {
        sll = Math.abs(d[m] as number);
        shift = smallerSingularValue(d[ll] as number, e[ll] as number, d[ll + 1] as number);
      }
      if (sll > 0 && (shift / sll) ** 2 < EPS) shift = 0;
    }
    iter += m - ll;
    const count = m - ll + 1;
    if (shift === 0) {
      if (idir === 1) {
        let cs = 1;
        let oldcs = 1;
        let oldsn = 0;
        for (let i = ll; i <= m - 1; i++) {
          let sn: number;
          let r: number;
          [cs, sn, r] = givens((d[i] as number) * cs, e[i] as number);
          if (i > ll) e[i - 1] = oldsn * r;
          let di: number;
          [oldcs, oldsn, di] = givens(oldcs * r, (d[i + 1] as number) * sn);
          d[i] = di;
          c2[i - ll] = oldcs;
          s2[i - ll] = oldsn;
        }
        const h = (d[m] as number) * cs;
        d[m] = h * oldcs;
        e[m - 1] = h * oldsn;
        rotateColumns(u, n, ll, count, c2, s2, true);
        if (Math.abs(e[m - 1] as number) <= thresh) e[m - 1] = 0;
      } else {
        let cs = 1;
        let oldcs = 1;
        let oldsn = 0;
        for (let i = m; i >= ll + 1; i--) {
          let sn: number;
          let r: number;
          [cs, sn, r] = givens((d[i] as number) * cs, e[i - 1] as number);
          if (i < m) e[i] = oldsn * r;
          let di: number;
          [oldcs, oldsn, di] = givens(oldcs * r, (d[i - 1] as number) * sn);
          d[i] = di;
          c1[i - ll - 1] = cs;
          s1[i - ll - 1] = -sn;
        }
        const h = (d[ll] as number) * cs;
        d[ll] = h * oldcs;
        e[ll] = h * oldsn;
        rotateColumns(u, n, ll, count, c1, s1, false);
        if (Math.abs(e[ll] as number) <= thresh) e[ll] = 0;
      }
    } else if (idir === 1) {
      let f = (Math.abs(d[ll] as number) - shift) * (sign(1, d[ll] as number) + shift / (d[ll] as number));
      let g = e[ll] as number;
      for (let i = ll; i <= m - 1; i++) {
        const [cosr, sinr, r1] = givens(f, g);
        if (i > ll) e[i - 1] = r1;
        f = cosr * (d[i] as number) + sinr * (e[i] as number);
        e[i] = cosr * (e[i] as number) - sinr * (d[i] as number);
        g = sinr * (d[i + 1] as number);
        d[i + 1] = cosr * (d[i + 1] as number);
        const [cosl, sinl, r2] = givens(f, g);
        d[i] = r2;
        f = cosl * (e[i] as number) + sinl * (d[i + 1] as number);
        d[i + 1] = cosl * (d[i + 1] as number) - sinl * (e[i] as number);
        if (i < m - 1) {
          g = sinl * (e[i + 1] as number);
          e[i + 1] = cosl * (e[i + 1] as number);
        }
        c2[i - ll] = cosl;
        s2[i - ll] = sinl;
      }
      e[m - 1] = f;
      rotateColumns(u, n, ll, count, c2, s2, true);
      if (Math.abs(e[m - 1] as number) <= thresh) e[m - 1] = 0;
    } else {
      let f = (Math.abs(d[m] as number) - shift) * (sign(1, d[m] as number) + shift / (d[m] as number));
      let g = e[m - 1] as number;
      for (let i = m; i >= ll + 1; i--) {
        const [cosr, sinr, r1] = givens(f, g);
        if (i < m) e[i] = r1;
        f = cosr * (d[i] as number) + sinr * (e[i - 1] as number);
        e[i - 1] = cosr * (e[i - 1] as number) - sinr * (d[i] as number);
        g = sinr * (d[i - 1] as number);
        d[i - 1] = cosr * (d[i - 1] as number);
        const [cosl, sinl, r2] = givens(f, g);
        d[i] = r2;
        f = cosl * (e[i - 1] as number) + sinl * (d[i - 1] as number);
        d[i - 1] = cosl * (d[i - 1] as number) - sinl * (e[i - 1] as number);
        if (i > ll + 1) {
          g = sinl * (e[i - 2] as number);
          e[i - 2] = cosl * (e[i - 2] as number);
        }
        c1[i - ll - 1] = cosr;
        s1[i - ll - 1] = -sinr;
      }
      e[ll] = f;
      if (Math.abs(e[ll] as number) <= thresh) e[ll] = 0;
      rotateColumns(u, n, ll, count, c1, s1, false);
    }
  }
}
