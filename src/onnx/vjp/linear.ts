import { floatAttr, intAttr } from '../graph.js';
import { unsupported } from './context.js';
import type { VjpRule } from './rule.js';

/** Y = alpha * A' B' + beta * C, with A' = transA ? A^T : A and B' likewise. */
export const gemm: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const [a, b, c] = node.input as [string, string, string | undefined];
  const alpha = { float: floatAttr(node, 'alpha', 1) };
  const transA = intAttr(node, 'transA', 0);
  const transB = intAttr(node, 'transB', 0);
  const grads: (string | undefined)[] = [];
  if (wanted[0]) {
    grads[0] =
      transA === 0 ? ctx.op('Gemm', [dy, b], { alpha, transB: 1 - transB }) : ctx.op('Gemm', [b, dy], { alpha, transA: transB, transB: 1 });
  }
  if (wanted[1]) {
    grads[1] =
      transB === 0 ? ctx.op('Gemm', [a, dy], { alpha, transA: 1 - transA }) : ctx.op('Gemm', [dy, a], { alpha, transA: 1, transB: transA });
  }
  if (wanted[2] && c) {
    const scaled = ctx.op('Mul', [dy, ctx.float(floatAttr(node, 'beta', 1))]);
    grads[2] = ctx.unbroadcast(scaled, c, 2, ctx.rank(c, node));
  }
  return grads;
};

/** Batched matrix product with numpy broadcasting over the leading axes. */
export const matMul: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const [a, b] = node.input as [string, string];
  const rankA = ctx.rank(a, node);
  const rankB = ctx.rank(b, node);
  const rankY = Math.max(rankA, rankB);
  if (rankA < 2 && (wanted[0] || wanted[1])) throw unsupported(node, 'a 1-D left operand');
  const swap = (name: string, rank: number) =>
    ctx.op('Transpose', [name], {
      perm: [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2],
    });
  const grads: (string | undefined)[] = [];
  if (rankB === 1) {
    // y[..., m] = sum_k a[..., m, k] b[k]
    const column = ctx.op('Unsqueeze', [dy, ctx.int64([-1])]);
    if (wanted[0]) grads[0] = ctx.op('Mul', [column, b]);
    if (wanted[1]) {
      const full = ctx.op('Mul', [column, a]);
      grads[1] = ctx.op('Reshape', [ctx.unbroadcast(full, b, rankA, 1), ctx.shape(b)]);
    }
    return grads;
  }
  if (wanted[0]) grads[0] = ctx.unbroadcast(ctx.op('MatMul', [dy, swap(b, rankB)]), a, rankY, rankA);
  if (wanted[1]) grads[1] = ctx.unbroadcast(ctx.op('MatMul', [swap(a, rankA), dy]), b, rankY, rankB);
  return grads;
};
