import { floatAttr, intAttr, stringAttr } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { unsupported, type VjpContext } from './context.js';
import type { VjpRule } from './rule.js';

/** Gradients of a broadcasting binary op given the local gradient for each operand (before un-broadcasting). */
function binary(
  ctx: VjpContext,
  node: NodeProto,
  wanted: boolean[],
  local: [(() => string) | undefined, (() => string) | undefined],
): (string | undefined)[] {
  const [a, b] = node.input as [string, string];
  const y = node.output?.[0] as string;
  const rankY = ctx.knownRank(y) ?? Math.max(ctx.rank(a, node), ctx.rank(b, node));
  return [a, b].map((operand, i) => {
    const make = local[i];
    if (!wanted[i] || !make) return undefined;
    // Operands proven to have the output's shape (a residual Add) need nothing summed away.
    if (ctx.sameShape(operand, y)) return make();
    return ctx.unbroadcast(make(), operand, rankY, ctx.rank(operand, node));
  });
}

export const add: VjpRule = (ctx, node, [dy], wanted) => (dy ? binary(ctx, node, wanted, [() => dy, () => dy]) : []);

export const sub: VjpRule = (ctx, node, [dy], wanted) => (dy ? binary(ctx, node, wanted, [() => dy, () => ctx.op('Neg', [dy])]) : []);

export const mul: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const [a, b] = node.input as [string, string];
  return binary(ctx, node, wanted, [() => ctx.op('Mul', [dy, b]), () => ctx.op('Mul', [dy, a])]);
};

export const div: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const [, b] = node.input as [string, string];
  const y = node.output?.[0] as string;
  // d(a/b)/db = -a/b^2 = -y/b
  return binary(ctx, node, wanted, [() => ctx.op('Div', [dy, b]), () => ctx.op('Neg', [ctx.op('Div', [ctx.op('Mul', [dy, y]), b])])]);
};

/** Variadic Sum: every operand receives the gradient, un-broadcast. */
export const sum: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const y = node.output?.[0] as string;
  const inputs = node.input as string[];
  const rankY = ctx.knownRank(y) ?? Math.max(...inputs.map((x) => ctx.rank(x, node)));
  return inputs.map((x, i) => {
    if (!wanted[i]) return undefined;
    return ctx.sameShape(x, y) ? dy : ctx.unbroadcast(dy, x, rankY, ctx.rank(x, node));
  });
};

/** Unary ops: `local(x, y, dy)` returns dL/dx. */
function unary(local: (ctx: VjpContext, x: string, y: string, dy: string, node: NodeProto) => string): VjpRule {
  return (ctx, node, [dy], wanted) => {
    if (!dy || !wanted[0]) return [];
    return [local(ctx, node.input?.[0] as string, node.output?.[0] as string, dy, node)];
  };
}

const masked = (ctx: VjpContext, condition: string, value: string) => ctx.op('Where', [condition, value, ctx.float(0)]);

// Masks of piecewise-linear activations read the op's output, not its input: the same mask (y > 0 iff
// x > 0 for ReLU), and ONNX Runtime can still fuse the activation into the convolution before it.

// ReLU passes the gradient where the input is positive, as PyTorch's threshold_backward does.
export const relu = unary((ctx, _x, y, dy) => masked(ctx, ctx.op('Greater', [y, ctx.float(0)]), dy));

export const leakyRelu = unary((ctx, x, y, dy, node) => {
  const alpha = floatAttr(node, 'alpha', 0.01);
  // With a positive slope the output's sign is the input's.
  const sign = alpha > 0 ? y : x;
  return ctx.op('Where', [ctx.op('Greater', [sign, ctx.float(0)]), dy, ctx.op('Mul', [dy, ctx.float(alpha)])]);
});

export const prelu: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  if (wanted[1]) throw unsupported(node, 'its slope depends on the target');
  if (!wanted[0]) return [];
  const [x, slope] = node.input as [string, string];
  return [ctx.op('Where', [ctx.op('Greater', [x, ctx.float(0)]), dy, ctx.op('Mul', [dy, slope])])];
};

// Clip (ReLU6 and friends): the gradient passes strictly inside the bounds, as PyTorch's hardtanh does.
export const clip: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  if (wanted[1] || wanted[2]) throw unsupported(node, 'its bounds depend on the target');
  if (!wanted[0]) return [];
  const [, low, high] = node.input as [string, string | undefined, string | undefined];
  // lo < y < hi exactly where lo < x < hi: outside, y sits on a bound.
  const y = node.output?.[0] as string;
  const conditions: string[] = [];
  if (low) conditions.push(ctx.op('Greater', [y, low]));
  if (high) conditions.push(ctx.op('Less', [y, high]));
  if (conditions.length === 0) return [dy];
  const inside = conditions.length === 1 ? conditions[0] : ctx.op('And', conditions);
  return [masked(ctx, inside as string, dy)];
};

export const sigmoid = unary((ctx, _x, y, dy) => ctx.op('Mul', [dy, ctx.op('Mul', [y, ctx.op('Sub', [ctx.float(1), y])])]));

export const tanh = unary((ctx, _x, y, dy) => ctx.op('Mul', [dy, ctx.op('Sub', [ctx.float(1), ctx.op('Mul', [y, y])])]));

export const exp = unary((ctx, _x, y, dy) => ctx.op('Mul', [dy, y]));

export const neg = unary((ctx, _x, _y, dy) => ctx.op('Neg', [dy]));

export const sqrt = unary((ctx, _x, y, dy) => ctx.op('Div', [ctx.op('Mul', [dy, ctx.float(0.5)]), y]));

// erf'(x) = 2 / sqrt(pi) * exp(-x^2): GELU is exported as x * 0.5 * (1 + erf(x / sqrt 2)).
export const erf = unary((ctx, x, _y, dy) =>
  ctx.op('Mul', [dy, ctx.op('Mul', [ctx.op('Exp', [ctx.op('Neg', [ctx.op('Mul', [x, x])])]), ctx.float(2 / Math.sqrt(Math.PI))])]),
);

/**
 * Gelu (opset 20): exact, y = x Phi(x), y' = Phi(x) + x phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2 and
 * phi(x) = exp(-x^2 / 2) / sqrt(2 pi); `approximate="tanh"`, y = x (1 + t) / 2 with t = tanh(u),
 * u = sqrt(2 / pi) (x + 0.044715 x^3), y' = (1 + t) / 2 + x (1 - t^2) sqrt(2 / pi) (1 + 3 0.044715 x^2) / 2.
 */
export const gelu = unary((ctx, x, _y, dy, node) => {
  const half = ctx.float(0.5);
  const xx = ctx.op('Mul', [x, x]);
  let local: string;
  if (stringAttr(node, 'approximate', 'none') === 'tanh') {
    const k = Math.sqrt(2 / Math.PI);
    const u = ctx.op('Mul', [ctx.op('Add', [x, ctx.op('Mul', [ctx.op('Mul', [xx, x]), ctx.float(0.044715)])]), ctx.float(k)]);
    const t = ctx.op('Tanh', [u]);
    const du = ctx.op('Mul', [ctx.op('Add', [ctx.float(1), ctx.op('Mul', [xx, ctx.float(3 * 0.044715)])]), ctx.float(k)]);
    const dt = ctx.op('Mul', [ctx.op('Sub', [ctx.float(1), ctx.op('Mul', [t, t])]), du]);
    local = ctx.op('Mul', [ctx.op('Add', [ctx.op('Add', [ctx.float(1), t]), ctx.op('Mul', [x, dt])]), half]);
  } else {
    const cdf = ctx.op('Mul', [ctx.op('Add', [ctx.float(1), ctx.op('Erf', [ctx.op('Mul', [x, ctx.float(Math.SQRT1_2)])])]), half]);
    const pdf = ctx.op('Mul', [ctx.op('Exp', [ctx.op('Mul', [xx, ctx.float(-0.5)])]), ctx.float(1 / Math.sqrt(2 * Math.PI))]);
    local = ctx.op('Add', [cdf, ctx.op('Mul', [x, pdf])]);
  }
  return ctx.op('Mul', [dy, local]);
});

// HardSigmoid: max(0, min(1, alpha x + beta)); the slope alpha inside (0, 1), zero outside.
export const hardSigmoid = unary((ctx, _x, y, dy, node) => {
  const alpha = floatAttr(node, 'alpha', 0.2);
  // 0 < y < 1 exactly where 0 < alpha x + beta < 1.
  const inside = ctx.op('And', [ctx.op('Greater', [y, ctx.float(0)]), ctx.op('Less', [y, ctx.float(1)])]);
  return masked(ctx, inside, ctx.op('Mul', [dy, ctx.float(alpha)]));
});

// HardSwish: x * relu6(x + 3) / 6; PyTorch's backward: 0 below -3, x/3 + 1/2 up to 3, 1 above.
export const hardSwish = unary((ctx, x, _y, dy) => {
  const middle = ctx.op('Mul', [dy, ctx.op('Add', [ctx.op('Div', [x, ctx.float(3)]), ctx.float(0.5)])]);
  const upper = ctx.op('Where', [ctx.op('LessOrEqual', [x, ctx.float(3)]), middle, dy]);
  return ctx.op('Where', [ctx.op('Less', [x, ctx.float(-3)]), ctx.float(0), upper]);
});

export const pow: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  if (wanted[1]) throw unsupported(node, 'its exponent depends on the target');
  if (!wanted[0]) return [];
  const [x, e] = node.input as [string, string];
  const exponent = ctx.graph.constantValues(e);
  if (exponent?.length !== 1) throw unsupported(node, 'a non-constant or non-scalar exponent');
  const k = exponent[0] as number;
  const derivative = ctx.op('Mul', [ctx.op('Pow', [x, ctx.float(k - 1)]), ctx.float(k)]);
  return [ctx.op('Mul', [dy, derivative])];
};

/** Softmax inside the network (the one at the end is stripped): dx = y * (dy - sum(dy * y)). */
export const softmax: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy || !wanted[0]) return [];
  const y = node.output?.[0] as string;
  if (ctx.graph.opset < 13) throw unsupported(node, 'Softmax before opset 13 (re-export with opset >= 13)');
  const axis = intAttr(node, 'axis', -1);
  const dot = ctx.op('ReduceSum', [ctx.op('Mul', [dy, y]), ctx.int64([axis])], { keepdims: 1 });
  return [ctx.op('Mul', [y, ctx.op('Sub', [dy, dot])])];
};

/** Where(condition, a, b): the gradient goes to the branch each element came from. */
export const where: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const [condition, a, b] = node.input as [string, string, string];
  const y = node.output?.[0] as string;
  const rankY = ctx.rank(y, node);
  const zero = ctx.float(0);
  return [
    undefined,
    wanted[1] ? ctx.unbroadcast(ctx.op('Where', [condition, dy, zero]), a, rankY, ctx.rank(a, node)) : undefined,
    wanted[2] ? ctx.unbroadcast(ctx.op('Where', [condition, zero, dy]), b, rankY, ctx.rank(b, node)) : undefined,
  ];
};

/** Cast between float types: the gradient passes (in float32, the type every rule works in). */
export const cast: VjpRule = (_ctx, _node, [dy], wanted) => (dy && wanted[0] ? [dy] : []);

export const identity: VjpRule = (_ctx, _node, [dy], wanted) => (dy && wanted[0] ? [dy] : []);

/**
 * LayerNormalization over the axes from `axis` on: y = xhat * scale + bias, xhat = (x - mean) r, r = 1 / sqrt(var + eps).
 * dL/dx = r (g - mean(g) - xhat mean(g xhat)) with g = dy * scale, the means over the normalised axes; the statistics
 * are recomputed (the op's optional Mean and InvStdDev outputs are rarely exported).
 */
export const layerNormalization: VjpRule = (ctx, node, [dy], wanted) => {
  if (!dy) return [];
  const [x, scale, bias] = node.input as [string, string, string | undefined];
  const rank = ctx.rank(x, node);
  const axis = intAttr(node, 'axis', -1);
  const first = axis < 0 ? axis + rank : axis;
  const axes = ctx.int64(Array.from({ length: rank - first }, (_, i) => first + i));
  const count = ctx.op('Cast', [ctx.op('ReduceProd', [ctx.dims(x, first)], { keepdims: 0 })], { to: 1 });
  const mean = (t: string) => ctx.op('Div', [ctx.op('ReduceSum', [t, axes], { keepdims: 1 }), count]);
  const centred = ctx.op('Sub', [x, mean(x)]);
  const variance = mean(ctx.op('Mul', [centred, centred]));
  const r = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.float(floatAttr(node, 'epsilon', 1e-5))])])]);
  const xhat = ctx.op('Mul', [centred, r]);
  const grads: (string | undefined)[] = [];
  if (wanted[0]) {
    const g = ctx.op('Mul', [dy, scale]);
    const inner = ctx.op('Sub', [ctx.op('Sub', [g, mean(g)]), ctx.op('Mul', [xhat, mean(ctx.op('Mul', [g, xhat]))])]);
    grads[0] = ctx.op('Mul', [r, inner]);
  }
  if (wanted[1]) grads[1] = ctx.unbroadcast(ctx.op('Mul', [dy, xhat]), scale, rank, ctx.rank(scale, node));
  if (wanted[2] && bias) grads[2] = ctx.unbroadcast(dy, bias, rank, ctx.rank(bias, node));
  return grads;
};
