import { resizePlaneBilinear } from '../engine/resize.js';
import { CamerasError } from '../errors.js';
import { oneScaleFacts } from './base-cam.js';
import type { AttentionPass, SaliencyMethod } from './method.js';

export type HeadFusion = 'mean' | 'max' | 'min';

export interface RolloutOptions {
  /** How a block's heads become one map: their mean, maximum (default, as vit-explain's command line) or minimum. */
  headFusion?: HeadFusion;
  /** The fraction of each fused map's smallest attentions set to zero (default 0.9, as vit-explain's command line). */
  discardRatio?: number;
}

/**
 * Attention rollout (Abnar and Zuidema 2020, as jacobgil/vit-explain's `rollout`): per block, the heads fused
 * (mean, max or min) into A, its `floor(T^2 r)` smallest entries zeroed (never the class token's own, flat index 0),
 * a = (A + I) / 2 divided column-wise, a_ij / sum_k a_jk (vit-explain's broadcasting, kept so maps equal its own),
 * and R = a R from R = I; the map is the class token's row over the patches, R[0, prefix:], over its maximum.
 * Class-agnostic: the class is reported, not used.
 */
export const rollout: SaliencyMethod<RolloutOptions> = {
  name: 'rollout',
  summary: 'Attention rollout: head-fused attention multiplied through the blocks (Abnar & Zuidema; vit-explain)',
  needs: ['attention'],
  options: ['headFusion', 'discardRatio'],
  compute: async (context, input, options) => {
    const fusion = options.headFusion ?? 'max';
    if (fusion !== 'mean' && fusion !== 'max' && fusion !== 'min')
      throw new CamerasError(`unknown head fusion '${String(fusion)}'; use mean, max or min`);
    const ratio = options.discardRatio ?? 0.9;
    if (!(ratio >= 0 && ratio < 1)) throw new CamerasError(`'discardRatio' ${ratio} must be at least 0 and below 1`);
    const pass = await (await context.attention()).run(input, options.classIndex ?? null, options.target);
    options.onProgress?.(1, 1);
    return {
      raw: classRow(rolloutMatrix(pass, fusion, ratio), pass),
      ...oneScaleFacts(input, pass.output, options.classIndex ?? null, options.target),
    };
  },
  postprocess: (raw, height, width) => {
    let max = 0;
    for (const v of raw.data) if (v > max) max = v;
    const scaled = Float64Array.from(raw.data, (v) => (max > 0 ? v / max : 0));
    const map = Float32Array.from(resizePlaneBilinear(scaled, raw.height, raw.width, height, width));
    return { map, width, height, empty: !(max > 0) };
  },
};

/** The rolled-out `T x T` matrix, row-major. */
function rolloutMatrix(pass: AttentionPass, fusion: HeadFusion, ratio: number): Float64Array {
  const tokens = pass.grid.prefix + pass.grid.h * pass.grid.w;
  const size = tokens * tokens;
  let result = identity(tokens);
  for (const { attention } of pass.blocks) {
    const heads = attention.shape[0] as number;
    const fused = new Float64Array(size);
    for (let p = 0; p < size; p++) {
      let v = attention.data[p] as number;
      for (let h = 1; h < heads; h++) {
        const x = attention.data[h * size + p] as number;
        v = fusion === 'mean' ? v + x : fusion === 'max' ? Math.max(v, x) : Math.min(v, x);
      }
      fused[p] = fusion === 'mean' ? v / heads : v;
    }
    // The smallest floor(T^2 r) entries go, except the class token's attention to itself.
    const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => (fused[a] as number) - (fused[b] as number) || a - b);
    const dropped = Math.floor(size * ratio);
    for (let i = 0; i < dropped; i++) if (order[i] !== 0) fused[order[i] as number] = 0;
    const a = new Float64Array(size);
    for (let p = 0; p < size; p++) a[p] = ((fused[p] as number) + (p % (tokens + 1) === 0 ? 1 : 0)) / 2;
    const sums = new Float64Array(tokens);
    for (let i = 0; i < tokens; i++) for (let j = 0; j < tokens; j++) sums[i] = (sums[i] as number) + (a[i * tokens + j] as number);
    for (let i = 0; i < tokens; i++)
      for (let j = 0; j < tokens; j++) a[i * tokens + j] = (a[i * tokens + j] as number) / (sums[j] as number);
    result = multiply(a, result, tokens);
  }
  return result;
}

/** The class token's row over the patches, on their grid. */
export function classRow(matrix: Float64Array, pass: AttentionPass) {
  const { prefix, h, w } = pass.grid;
  const tokens = prefix + h * w;
  return { data: matrix.slice(prefix, tokens), channels: 1, height: h, width: w };
}

export function identity(size: number): Float64Array {
  const m = new Float64Array(size * size);
  for (let i = 0; i < size; i++) m[i * size + i] = 1;
  return m;
}

/** a b for square row-major matrices of side n. */
export function multiply(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = out.subarray(i * n, (i + 1) * n);
    for (let k = 0; k < n; k++) {
      const x = a[i * n + k] as number;
      if (x === 0) continue;
      const bk = b.subarray(k * n, (k + 1) * n);
      for (let j = 0; j < n; j++) row[j] = (row[j] as number) + x * (bk[j] as number);
    }
  }
  return out;
}
