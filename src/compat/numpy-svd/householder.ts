/**
 * The orthogonal reductions LAPACK's dgesdd applies before its bidiagonal SVD, in the same order and with
 * the same reflector signs (dlarfg: beta = -sign(alpha) * norm). numpy.linalg.svd computes float32 input in
 * float64 through dgesdd, so reproducing these steps tells which sign numpy gives a singular vector.
 */

import { sign } from './bdsqr.js';

/** An upper (or lower) bidiagonal matrix with the top left singular vector carried into its row basis. */
export interface Bidiagonal {
  /** Diagonal, length k = min(m, n). */
  d: Float64Array;
  /** Off-diagonal, length k - 1. */
  e: Float64Array;
  /** True when e sits below the diagonal (dgesdd's m < n path without an LQ step). */
  lower: boolean;
  /** The given left vector of A in the bidiagonal's row basis (Q^T u), length k. */
  u: Float64Array;
}

/**
 * dlarfg on x[offset + j * stride], j = 0..count-1 (x[offset] is alpha): returns tau and leaves beta in
 * x[offset] and the reflector's tail (its head is an implicit 1) in the rest.
 */
function reflector(x: Float64Array, offset: number, stride: number, count: number): number {
  if (count <= 1) return 0;
  let norm = 0;
  for (let j = 1; j < count; j++) norm = Math.hypot(norm, x[offset + j * stride] as number);
  if (norm === 0) return 0;
  const alpha = x[offset] as number;
  const magnitude = Math.hypot(alpha, norm);
  const beta = -sign(magnitude, alpha);
  const scale = 1 / (alpha - beta);
  for (let j = 1; j < count; j++) x[offset + j * stride] = (x[offset + j * stride] as number) * scale;
  x[offset] = beta;
  return (beta - alpha) / beta;
}

/** Row-major matrix view for the reductions. */
class Matrix {
  constructor(
    readonly data: Float64Array,
    readonly rows: number,
    readonly cols: number,
  ) {}
  at(i: number, j: number): number {
    return this.data[i * this.cols + j] as number;
  }
  set(i: number, j: number, v: number): void {
    this.data[i * this.cols + j] = v;
  }

  /** H = I - tau [1; v][1; v]^T, v stored down column `col` from row r0+1, applied to rows r0.. of columns c0... */
  reflectRowsFromColumn(col: number, r0: number, tau: number, c0: number): void {
    if (tau === 0 || c0 >= this.cols) return;
    const { data, cols, rows } = this;
    // Row by row (contiguous) rather than column by column: s = v^T A, then A -= tau v s.
    const s = data.slice(r0 * cols + c0, r0 * cols + cols);
    for (let i = r0 + 1; i < rows; i++) {
      const vi = data[i * cols + col] as number;
      if (vi === 0) continue;
      const row = i * cols + c0;
      for (let j = 0; j < s.length; j++) s[j] = (s[j] as number) + vi * (data[row + j] as number);
    }
    for (let j = 0; j < s.length; j++) s[j] = (s[j] as number) * tau;
    for (let i = r0; i < rows; i++) {
      const vi = i === r0 ? 1 : (data[i * cols + col] as number);
      if (vi === 0) continue;
      const row = i * cols + c0;
      for (let j = 0; j < s.length; j++) data[row + j] = (data[row + j] as number) - vi * (s[j] as number);
    }
  }

  /** G = I - tau [1; w][1; w]^T, w stored along row `row` from column c0+1, applied to columns c0.. of rows r0... */
  reflectColumnsFromRow(row: number, c0: number, tau: number, r0: number): void {
    if (tau === 0) return;
    for (let i = r0; i < this.rows; i++) {
      let s = this.at(i, c0);
      for (let j = c0 + 1; j < this.cols; j++) s += this.at(row, j) * this.at(i, j);
      s *= tau;
      this.set(i, c0, this.at(i, c0) - s);
      for (let j = c0 + 1; j < this.cols; j++) this.set(i, j, this.at(i, j) - s * this.at(row, j));
    }
  }

  /** The same left reflector (stored down column `col` from row r0) applied to a vector. */
  reflectVector(u: Float64Array, col: number, r0: number, tau: number): void {
    if (tau === 0) return;
    let s = u[r0] as number;
    for (let i = r0 + 1; i < this.rows; i++) s += this.at(i, col) * (u[i] as number);
    s *= tau;
    u[r0] = (u[r0] as number) - s;
    for (let i = r0 + 1; i < this.rows; i++) u[i] = (u[i] as number) - s * this.at(i, col);
  }
}

/** dgeqr2: A = QR; returns R (n x n) and Q^T u restricted to its first n entries. */
function qr(a: Matrix, u: Float64Array): { r: Matrix; u: Float64Array } {
  const { rows: m, cols: n } = a;
  for (let i = 0; i < n; i++) {
    const tau = reflector(a.data, i * n + i, n, m - i);
    a.reflectRowsFromColumn(i, i, tau, i + 1);
    a.reflectVector(u, i, i, tau);
  }
  const r = new Matrix(new Float64Array(n * n), n, n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) r.set(i, j, a.at(i, j));
  return { r, u: u.slice(0, n) };
}

/** dgelq2: A = LQ; returns L (m x m). The left singular vectors of A are those of L. */
function lq(a: Matrix): Matrix {
  const { rows: m, cols: n } = a;
  for (let i = 0; i < m; i++) {
    const tau = reflector(a.data, i * n + i, 1, n - i);
    a.reflectColumnsFromRow(i, i, tau, i + 1);
  }
  const l = new Matrix(new Float64Array(m * m), m, m);
  for (let i = 0; i < m; i++) for (let j = 0; j <= i; j++) l.set(i, j, a.at(i, j));
  return l;
}

/** dgebd2: A = Q B P^T with B upper bidiagonal when m >= n, lower otherwise; u becomes Q^T u. */
function bidiagonalize(a: Matrix, u: Float64Array): Bidiagonal {
  const { rows: m, cols: n } = a;
  const k = Math.min(m, n);
  const d = new Float64Array(k);
  const e = new Float64Array(Math.max(k - 1, 0));
  if (m >= n) {
    for (let i = 0; i < n; i++) {
      const tauq = reflector(a.data, i * n + i, n, m - i);
      d[i] = a.at(i, i);
      a.reflectRowsFromColumn(i, i, tauq, i + 1);
      a.reflectVector(u, i, i, tauq);
      if (i < n - 1) {
        const taup = reflector(a.data, i * n + i + 1, 1, n - i - 1);
        e[i] = a.at(i, i + 1);
        a.reflectColumnsFromRow(i, i + 1, taup, i + 1);
      }
    }
    return { d, e, lower: false, u: u.slice(0, k) };
  }
  for (let i = 0; i < m; i++) {
    const taup = reflector(a.data, i * n + i, 1, n - i);
    d[i] = a.at(i, i);
    a.reflectColumnsFromRow(i, i, taup, i + 1);
    if (i < m - 1) {
      const tauq = reflector(a.data, (i + 1) * n + i, n, m - i - 1);
      e[i] = a.at(i + 1, i);
      a.reflectRowsFromColumn(i, i + 1, tauq, i + 1);
      a.reflectVector(u, i, i + 1, tauq);
    }
  }
  return { d, e, lower: true, u };
}

/**
 * dgesdd's reduction of A (m x n, row-major, copied) to bidiagonal form, through a QR (m much larger than n)
 * or LQ (n much larger than m) factorisation first exactly where dgesdd takes those paths.
 */
export function dgesddBidiagonal(values: Float64Array, m: number, n: number, leftVector: Float64Array): Bidiagonal {
  const a = new Matrix(Float64Array.from(values), m, n);
  const u = Float64Array.from(leftVector);
  const threshold = Math.trunc((Math.min(m, n) * 11) / 6);
  if (m >= n) {
    if (m >= threshold) {
      const reduced = qr(a, u);
      return bidiagonalize(reduced.r, reduced.u);
    }
    return bidiagonalize(a, u);
  }
  if (n >= threshold) return bidiagonalize(lq(a), u);
  return bidiagonalize(a, u);
}
