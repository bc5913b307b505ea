import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { smallBidiagonalTopLeft } from '../src/compat/numpy-svd/bdsqr.js';
import { lapackSign } from '../src/compat/numpy-svd/lapack-sign.js';
import { FIXTURES } from './helpers.js';

interface SignCase {
  m: number;
  n: number;
  kind: 'relu' | 'lowrank';
  seed: number;
  index: number;
  sign: 1 | -1;
}

/** The matrices of scripts/make_lapack_sign_fixture.py, value for value (float32). */
function generate(m: number, n: number, seed: number, kind: SignCase['kind']): Float64Array {
  let state = seed;
  const uniform = () => {
    state = Number((BigInt(state) * 1664525n + 1013904223n) % 4294967296n);
    return (state >>> 8) / 2 ** 24 - 0.5;
  };
  const a = new Float64Array(m * n);
  if (kind === 'relu') {
    const shift = Array.from({ length: n }, () => uniform() * 0.5);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] = Math.max(0, uniform() + (shift[j] as number));
  } else {
    const p = Array.from({ length: m }, () => [uniform(), uniform(), uniform()] as const);
    const q = [0, 1, 2].map(() => Array.from({ length: n }, () => uniform()));
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        const [p0, p1, p2] = p[i] as readonly [number, number, number];
        a[i * n + j] = Math.fround(
          p0 * (q[0]?.[j] as number) + p1 * (q[1]?.[j] as number) + p2 * (q[2]?.[j] as number) + 0.001 * uniform(),
        );
      }
  }
  return a;
}

/** The first right singular vector (any sign) by power iteration on A^T A. */
function topRight(a: Float64Array, m: number, n: number): Float64Array {
  let v = Float64Array.from({ length: n }, (_, i) => 1 + Math.sin(i));
  for (let iteration = 0; iteration < 5000; iteration++) {
    const av = new Float64Array(m);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) av[i] = (av[i] as number) + (a[i * n + j] as number) * (v[j] as number);
    const next = new Float64Array(n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) next[j] = (next[j] as number) + (a[i * n + j] as number) * (av[i] as number);
    const norm = Math.hypot(...next);
    let change = 0;
    for (let j = 0; j < n; j++) change = Math.max(change, Math.abs((next[j] as number) / norm - (v[j] as number)));
    v = next.map((t) => t / norm);
    if (change < 1e-15) break;
  }
  return v;
}

describe("numpy.linalg.svd's sign of the first singular vector (LAPACK dgesdd)", () => {
  const fixture = JSON.parse(readFileSync(resolve(FIXTURES, 'lapack-sign.json'), 'utf8')) as { cases: SignCase[] };
  for (const c of fixture.cases) {
    it(`${c.m} x ${c.n} ${c.kind} (seed ${c.seed})`, () => {
      const a = generate(c.m, c.n, c.seed, c.kind);
      const v = topRight(a, c.m, c.n);
      const u = new Float64Array(c.m);
      for (let i = 0; i < c.m; i++) for (let j = 0; j < c.n; j++) u[i] = (u[i] as number) + (a[i * c.n + j] as number) * (v[j] as number);
      const norm = Math.hypot(...u);
      const unit = u.map((t) => t / norm);
      const sign = lapackSign(a, c.m, c.n, unit);
      assert.equal(Math.sign((v[c.index] as number) * sign), c.sign);
      // Flipping the given pair flips the answer: the sign is a property of the matrix, not of the input.
      assert.equal(
        lapackSign(
          a,
          c.m,
          c.n,
          unit.map((t) => -t),
        ),
        -sign,
      );
    });
  }
});

describe('small bidiagonal SVD (dbdsqr port)', () => {
  it('finds the top singular value and a unit left vector B B^T u = s^2 u', () => {
    const d = [3, -1.5, 2, 0.5, 4];
    const e = [1, 0.25, -2, 1.5, 0.75];
    for (const sqre of [0, 1] as const) {
      const { vector, value } = smallBidiagonalTopLeft(d, e, 5, sqre);
      // B B^T for the upper bidiagonal 5 x (5 + sqre).
      const bbt = (u: Float64Array, i: number) => {
        const row = (r: number) => {
          const out = new Map<number, number>([[r, d[r] as number]]);
          if (r < 4 + sqre) out.set(r + 1, e[r] as number);
          return out;
        };
        let s = 0;
        for (let k = 0; k < 5; k++) for (const [c, bv] of row(i)) s += bv * (row(k).get(c) ?? 0) * (u[k] as number);
        return s;
      };
      assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-12);
      for (let i = 0; i < 5; i++) assert.ok(Math.abs(bbt(vector, i) - value * value * (vector[i] as number)) < 1e-10);
    }
  });
});
