/**
 * Which sign LAPACK's dgesdd (numpy.linalg.svd) gives the first singular vector pair of a matrix.
 *
 * An SVD fixes singular vectors only up to sign; numpy's choice falls out of dgesdd's steps: Householder
 * reductions (householder.ts), then dbdsdc's divide and conquer on the bidiagonal. Each merge of that tree
 * solves a secular equation whose left vectors are -1 at the merge's middle row; a singular value whose
 * coupling to that row is negligible is deflated and keeps the vector its subtree gave it, down to the
 * leaves, which dbdsqr's QR sweeps solve (bdsqr.ts). We follow the top singular value down the same tree.
 */

import { sign, smallBidiagonalTopLeft, sweepOffDiagonal } from './bdsqr.js';
import { dgesddBidiagonal } from './householder.js';

const EPS = 2 ** -53;
/** dbdsdc's leaf size (ILAENV's SMLSIZ). */
const LEAF = 25;

interface Triple {
  value: number;
  left: Float64Array;
  right: Float64Array;
}

/** Solve the tridiagonal system (sub, diag, sup) x = b with partial pivoting (dgtsv), in place on b. */
function solveTridiagonal(sub: Float64Array, diag: Float64Array, sup: Float64Array, b: Float64Array): void {
  const n = diag.length;
  const d = Float64Array.from(diag);
  const du = Float64Array.from(sup);
  const dl = Float64Array.from(sub);
  const du2 = new Float64Array(n);
  const tiny = 1e-300;
  for (let i = 0; i < n - 1; i++) {
    if (Math.abs(d[i] as number) >= Math.abs(dl[i] as number)) {
      if (d[i] === 0) d[i] = tiny;
      const f = (dl[i] as number) / (d[i] as number);
      d[i + 1] = (d[i + 1] as number) - f * (du[i] as number);
      b[i + 1] = (b[i + 1] as number) - f * (b[i] as number);
      dl[i] = 0;
    } else {
      const f = (d[i] as number) / (dl[i] as number);
      d[i] = dl[i] as number;
      const temp = d[i + 1] as number;
      d[i + 1] = (du[i] as number) - f * temp;
      if (i < n - 2) {
        du2[i] = du[i + 1] as number;
        du[i + 1] = -f * (du2[i] as number);
      }
      du[i] = temp;
      const bt = b[i] as number;
      b[i] = b[i + 1] as number;
      b[i + 1] = bt - f * (b[i + 1] as number);
    }
  }
  if (d[n - 1] === 0) d[n - 1] = tiny;
  b[n - 1] = (b[n - 1] as number) / (d[n - 1] as number);
  if (n > 1) b[n - 2] = ((b[n - 2] as number) - (du[n - 2] as number) * (b[n - 1] as number)) / (d[n - 2] as number);
  for (let i = n - 3; i >= 0; i--) {
    b[i] = ((b[i] as number) - (du[i] as number) * (b[i + 1] as number) - (du2[i] as number) * (b[i + 2] as number)) / (d[i] as number);
  }
}

/**
 * The top singular triple of the upper bidiagonal rows x (rows + sqre) matrix at d[lo..], e[lo..]: bisection on
 * its Golub-Kahan tridiagonal (zero diagonal, off-diagonal d0, e0, d1, ...) for the value, then inverse iteration.
 */
function topTriple(d: Float64Array, e: Float64Array, lo: number, rows: number, sqre: number): Triple {
  const size = 2 * rows + sqre;
  const off = new Float64Array(size - 1);
  for (let i = 0; i < rows; i++) {
    off[2 * i] = d[lo + i] as number;
    if (2 * i + 1 < size - 1) off[2 * i + 1] = e[lo + i] as number;
  }
  let bound = 0;
  for (let i = 0; i < size; i++)
    bound = Math.max(bound, Math.abs(i > 0 ? (off[i - 1] as number) : 0) + Math.abs(i < size - 1 ? (off[i] as number) : 0));
  if (bound === 0) {
    const left = new Float64Array(rows);
    left[0] = 1;
    const right = new Float64Array(rows + sqre);
    right[0] = 1;
    return { value: 0, left, right };
  }
  const pivmin = 2.3e-308 * Math.max(1, bound * bound);
  // Eigenvalues below x, by Sturm sequence.
  const below = (x: number) => {
    let count = 0;
    let q = -x;
    if (q < 0) count++;
    for (let i = 1; i < size; i++) {
      if (Math.abs(q) < pivmin) q = -pivmin;
      q = -x - (off[i - 1] as number) ** 2 / q;
      if (q < 0) count++;
    }
    return count;
  };
  let low = 0;
  let high = bound * (1 + 1e-12) + 1e-300;
  for (let iteration = 0; iteration < 200 && high - low > Math.max(Math.abs(high), Math.abs(low)) * 2 * EPS; iteration++) {
    const mid = 0.5 * (low + high);
    if (mid === low || mid === high) break;
    if (below(mid) >= size) high = mid;
    else low = mid;
  }
  const value = 0.5 * (low + high);
  const diag = new Float64Array(size).fill(-value * (1 + 4 * EPS));
  let x = Float64Array.from({ length: size }, (_, i) => 1 + 0.01 * Math.sin(i + 1));
  for (let iteration = 0; iteration < 4; iteration++) {
    solveTridiagonal(off, diag, off, x);
    let norm = 0;
    for (const v of x) norm = Math.hypot(norm, v);
    x = x.map((v) => v / norm);
  }
  const right = Float64Array.from({ length: rows + sqre }, (_, i) => x[2 * i] as number);
  const left = Float64Array.from({ length: rows }, (_, i) => x[2 * i + 1] as number);
  const normalise = (v: Float64Array) => {
    let norm = 0;
    for (const t of v) norm = Math.hypot(norm, t);
    return norm > 0 ? v.map((t) => t / norm) : v;
  };
  return { value, left: normalise(left), right: normalise(right) };
}

/** dlasdt's depth: levels of merges above leaves of at most LEAF rows. */
function treeLevels(n: number): number {
  return Math.trunc(Math.log(n / (LEAF + 1)) / Math.log(2)) + 1;
}

/**
 * The top left singular vector of the node (rows lo..lo+rows-1, sqre extra column) as dlasd0 orients it:
 * deflated into a child, or the middle row negative where the secular equation made it. `node` is the
 * node's top triple where the caller has it already.
 */
function nodeTopLeft(
  d: Float64Array,
  e: Float64Array,
  lo: number,
  rows: number,
  sqre: 0 | 1,
  depth: number,
  levels: number,
  node?: Triple,
): Float64Array {
  if (depth > levels) return smallBidiagonalTopLeft(d.subarray(lo), e.subarray(lo), rows, sqre).vector;
  const nl = rows >> 1;
  const nr = rows - nl - 1;
  const centre = lo + nl;
  const top = node ?? topTriple(d, e, lo, rows, sqre);
  const left = topTriple(d, e, lo, nl, 1);
  const right = topTriple(d, e, centre + 1, nr, sqre);
  const alpha = d[centre] as number;
  const beta = e[centre] as number;
  const tolerance = 8 * EPS * Math.max(Math.abs(alpha), Math.abs(beta), left.value, right.value);
  const fromLeft = left.value >= right.value;
  const candidate = fromLeft ? left : right;
  const coupling = fromLeft ? alpha * (left.right[nl] as number) : beta * (right.right[0] as number);
  if (Math.abs(coupling) <= tolerance && top.value <= candidate.value * (1 + 1e-9)) {
    const vector = new Float64Array(rows);
    if (fromLeft) vector.set(nodeTopLeft(d, e, lo, nl, 1, depth + 1, levels, left), 0);
    else vector.set(nodeTopLeft(d, e, centre + 1, nr, sqre, depth + 1, levels, right), nl + 1);
    return vector;
  }
  return (top.left[nl] as number) > 0 ? top.left.map((t) => -t) : top.left;
}

/** dbdsdc on an upper bidiagonal of order k: the top left singular vector as it returns it. */
function bdsdcTopLeft(diagonal: Float64Array, offDiagonal: Float64Array): Float64Array {
  const k = diagonal.length;
  const vector = new Float64Array(k);
  if (k === 1) {
    vector[0] = sign(1, diagonal[0] as number);
    return vector;
  }
  const e = new Float64Array(k);
  e.set(offDiagonal);
  if (k <= LEAF) return smallBidiagonalTopLeft(diagonal, e, k, 0).vector;
  let norm = 0;
  for (const v of diagonal) norm = Math.max(norm, Math.abs(v));
  for (const v of offDiagonal) norm = Math.max(norm, Math.abs(v));
  if (norm === 0) {
    vector[0] = 1;
    return vector;
  }
  const eps = 0.9 * EPS;
  const d = diagonal.map((v) => {
    const t = v / norm;
    return Math.abs(t) < eps ? sign(eps, t) : t;
  });
  for (let i = 0; i < k; i++) e[i] = (e[i] as number) / norm;
  // Independent subproblems where the off-diagonal is negligible; the top value lives in one of them.
  let best: { value: number; start: number; size: number; triple?: Triple } = { value: -1, start: 0, size: 0 };
  let start = 0;
  for (let i = 0; i < k - 1; i++) {
    const small = Math.abs(e[i] as number) < eps;
    if (!small && i !== k - 2) continue;
    let size: number;
    if (i < k - 2) size = i - start + 1;
    else if (!small) size = k - start;
    else {
      size = i - start + 1;
      const last = Math.abs(d[k - 1] as number);
      if (last > best.value) best = { value: last, start: k - 1, size: 1 };
    }
    const triple = topTriple(d, e, start, size, 0);
    if (triple.value > best.value) best = { value: triple.value, start, size, triple };
    start = i + 1;
  }
  if (!best.triple) {
    // The 1 x 1 problem dbdsdc solves itself when the last off-diagonal is negligible.
    vector[best.start] = sign(1, d[best.start] as number);
    return vector;
  }
  const part =
    best.size <= LEAF
      ? smallBidiagonalTopLeft(d.subarray(best.start), e.subarray(best.start), best.size, 0).vector
      : nodeTopLeft(d, e, best.start, best.size, 0, 1, treeLevels(best.size), best.triple);
  vector.set(part, best.start);
  return vector;
}

/**
 * +1 or -1: the sign s for which s * u is the first left singular vector numpy.linalg.svd returns for the
 * row-major m x n matrix `values` (and s * v the first row of its VT), given any top singular pair (u, v).
 */
export function lapackSign(values: Float64Array, m: number, n: number, u: Float64Array): 1 | -1 {
  const bidiagonal = dgesddBidiagonal(values, m, n, u);
  const k = bidiagonal.d.length;
  const d = Float64Array.from(bidiagonal.d);
  const e = new Float64Array(k);
  e.set(bidiagonal.e);
  const ub = Float64Array.from(bidiagonal.u);
  if (bidiagonal.lower) {
    // dbdsdc first rotates a lower bidiagonal to upper on the left; carry u along.
    sweepOffDiagonal(d, e, k, (i, c, s) => {
      const a = ub[i] as number;
      const b = ub[i + 1] as number;
      ub[i] = c * a + s * b;
      ub[i + 1] = -s * a + c * b;
    });
    e[k - 1] = 0;
  }
  const top = bdsdcTopLeft(d, e.subarray(0, k - 1));
  let dot = 0;
  for (let i = 0; i < k; i++) dot += (top[i] as number) * (ub[i] as number);
  return dot < 0 ? -1 : 1;
}
