import { intAttr, intsAttr, stringAttr } from '../graph.js';
import { unsupported } from './context.js';
import type { VjpRule } from './rule.js';

/** Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's shape back. */
export const reshapeLike: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  const x = node.input?.[0] as string;
  return [ctx.op('Reshape', [dy, ctx.shape(x)])];
};

export const transpose: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  const x = node.input?.[0] as string;
  const rank = ctx.rank(x, node);
  const perm = intsAttr(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => {
    inverse[p] = i;
  });
  return [ctx.op('Transpose', [dy], { perm: inverse })];
};

export const expand: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  const x = node.input?.[0] as string;
  const y = node.output?.[0] as string;
  return [ctx.unbroadcast(dy, x, ctx.rank(y, node), ctx.rank(x, node))];
};

function normaliseAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Concat: split the gradient back into the inputs' extents along the axis. */
export const concat: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const inputs = node.input as string[];
  const first = inputs[0] as string;
  const axis = normaliseAxis(intAttr(node, 'axis', 0), ctx.rank(first, node));
  const sizes = ctx.op(
    'Concat',
    inputs.map((x) => ctx.dims(x, axis, axis + 1)),
    { axis: 0 },
  );
  const parts = ctx.ops('Split', [dy, sizes], { axis }, inputs.length);
  return parts.map((part, i) => (wanted[i] ? part : undefined));
};

/** Split: concatenate the outputs' gradients, with zeros for outputs that received none. */
export const split: VjpRule = (ctx, node, grads, wanted) => {
  if (!wanted[0] || grads.every((g) => !g)) return [];
  const x = node.input?.[0] as string;
  const axis = normaliseAxis(intAttr(node, 'axis', 0), ctx.rank(x, node));
  const parts = (node.output as string[]).map((y, i) => grads[i] ?? ctx.zerosLike(y));
  return [ctx.op('Concat', parts, { axis })];
};

/** Slice moves elements without duplicates: scatter the gradient back through the selected indices. */
export const slice: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  if (wanted.slice(1).some(Boolean)) throw unsupported(node, 'its bounds depend on the target');
  const [x, ...rest] = node.input as string[];
  return [ctx.scatterThroughIndices(x as string, dy, (iota) => ctx.op('Slice', [iota, ...rest]), false)];
};

/** Gather picks (and may repeat) slices along an axis: scatter-add the gradient back through the picked indices. */
export const gather: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  const [x, indices] = node.input as [string, string];
  const axis = intAttr(node, 'axis', 0);
  return [ctx.scatterThroughIndices(x, dy, (iota) => ctx.op('Gather', [iota, indices], { axis }), true)];
};

export const pad: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  if (wanted.slice(1).some(Boolean)) throw unsupported(node, 'its pads depend on the target');
  const [x, pads, , axes] = node.input as string[];
  if (axes) throw unsupported(node, 'the axes input of Pad-18');
  const mode = stringAttr(node, 'mode', 'constant');
  const rank = ctx.rank(x as string, node);
  const constantPads = ctx.graph.constantValues(pads as string);
  if (constantPads?.some((p) => p < 0)) throw unsupported(node, 'negative pads (cropping)');
  if (mode === 'constant') {
    const starts = ctx.op('Slice', [pads as string, ctx.int64([0]), ctx.int64([rank])]);
    const ends = ctx.op('Add', [starts, ctx.shape(x as string)]);
    return [ctx.op('Slice', [dy, starts, ends, ctx.int64(Array.from({ length: rank }, (_, i) => i))])];
  }
  // reflect / edge: one input element feeds several outputs, so scatter-add through the moved indices.
  return [ctx.scatterThroughIndices(x as string, dy, (iota) => ctx.op('Pad', [iota, pads as string], { mode }), true)];
};

/** ReduceMean and ReduceSum: broadcast the gradient back over the reduced axes (divided by the count for the mean). */
function reduce(mean: boolean): VjpRule {
  return (ctx, node, [dy], wanted) => {
    if (!dy || !wanted[0]) return [];
    const [x, axesInput] = node.input as [string, string | undefined];
    const y = node.output?.[0] as string;
    const axes = intsAttr(node, 'axes') ?? (axesInput ? ctx.graph.constantValues(axesInput) : []);
    if (!axes) throw unsupported(node, 'axes computed at run time');
    let grad = dy;
    if (intAttr(node, 'keepdims', 1) === 0 && axes.length > 0) {
      const rank = ctx.rank(x, node);
      grad = ctx.op('Unsqueeze', [dy, ctx.int64(axes.map((a) => normaliseAxis(a, rank)))]);
    }
    let expanded = ctx.op('Expand', [grad, ctx.shape(x)]);
    if (mean) {
      const count = ctx.op('Cast', [ctx.op('Div', [ctx.op('Size', [x]), ctx.op('Size', [y])])], { to: 1 });
      expanded = ctx.op('Div', [expanded, count]);
    }
    return [expanded];
  };
}

export const reduceMean = reduce(true);
export const reduceSum = reduce(false);
