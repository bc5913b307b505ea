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
      raw: classRow(classTokenRow(rolloutMatrices(pass, fusion, ratio), tokensOf(pass)), pass),
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

/** Per block, vit-explain's `a`: heads fused, the smallest entries dropped, (A + I) / 2 divided column-wise. */
function rolloutMatrices(pass: AttentionPass, fusion: HeadFusion, ratio: number): Float64Array[] {
  const tokens = pass.grid.prefix + pass.grid.h * pass.grid.w;
  const size = tokens * tokens;
  return pass.blocks.map(({ attention }) => {
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
    dropSmallest(fused, Math.floor(size * ratio));
    const a = new Float64Array(size);
    for (let p = 0; p < size; p++) a[p] = ((fused[p] as number) + (p % (tokens + 1) === 0 ? 1 : 0)) / 2;
    const sums = new Float64Array(tokens);
    for (let i = 0; i < tokens; i++) for (let j = 0; j < tokens; j++) sums[i] = (sums[i] as number) + (a[i * tokens + j] as number);
    for (let i = 0; i < tokens; i++)
      for (let j = 0; j < tokens; j++) a[i * tokens + j] = (a[i * tokens + j] as number) / (sums[j] as number);
    return a;
  });
}

/**
 * Zeroes the `count` smallest entries (ties in index order), except flat index 0 (the class token's attention to
 * itself), which still counts among them: vit-explain's `topk` then `indices[indices != 0]`.
 */
function dropSmallest(values: Float64Array, count: number): void {
  if (count <= 0) return;
  const threshold = Float64Array.from(values).sort()[count - 1] as number;
  let ties = count;
  for (const v of values) if (v < threshold) ties--;
  for (let p = 0; p < values.length; p++) {
    const v = values[p] as number;
    const drop = v < threshold || (v === threshold && ties-- > 0);
    if (drop && p !== 0) values[p] = 0;
  }
}

/**
 * Row 0 of M_L ... M_1 (the blocks' matrices, first block first), as e_0^T M_L ... M_1: vector products, T^2 per
 * block where the whole product is T^3. With `plusIdentity`, each M_l is I + the given matrix (Chefer's update).
 */
export function classTokenRow(matrices: Float64Array[], tokens: number, plusIdentity = false): Float64Array {
  let row = new Float64Array(tokens);
  row[0] = 1;
  for (let l = matrices.length - 1; l >= 0; l--) {
    const m = matrices[l] as Float64Array;
    const next = plusIdentity ? Float64Array.from(row) : new Float64Array(tokens);
    for (let i = 0; i < tokens; i++) {
      const x = row[i] as number;
      if (x === 0) continue;
      for (let j = 0; j < tokens; j++) next[j] = (next[j] as number) + x * (m[i * tokens + j] as number);
    }
    row = next;
  }
  return row;
}

/** The class token's row (length T) over the patches, on their grid. */
export function classRow(row: Float64Array, pass: AttentionPass) {
  const { prefix, h, w } = pass.grid;
  return { data: row.slice(prefix, prefix + h * w), channels: 1, height: h, width: w };
}

export function tokensOf(pass: AttentionPass): number {
  return pass.grid.prefix + pass.grid.h * pass.grid.w;
}
