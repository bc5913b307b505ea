import { intAttr, intsAttr, type OnnxGraph, stringAttr, tensorDims } from './graph.js';
import { toNumber } from './proto.js';

/** A dimension: a number, or a canonical expression over the model's symbolic input dims ('h', 'f(h,-1,2)'). */
export type Dim = number | string;

/** Ops whose output has their first input's shape. */
export const SAME_SHAPE: ReadonlySet<string> = new Set([
  'Relu',
  'LeakyRelu',
  'PRelu',
  'Clip',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Tanh',
  'Exp',
  'Neg',
  'Sqrt',
  'Erf',
  'Abs',
  'Identity',
  'Dropout',
  'BatchNormalization',
  'Softmax',
  'LogSoftmax',
  'Cast',
  'Elu',
  'Selu',
  'Softplus',
  'Sign',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Where', 'Greater', 'Less', 'Equal']);

function broadcast(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(...shapes.map((s) => (s as Dim[]).length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const dims = shapes.map((s) => (s as Dim[])[(s as Dim[]).length - rank + i] ?? 1).filter((d) => d !== 1);
    const first = dims[0] ?? 1;
    if (dims.some((d) => d !== first)) return undefined;
    out.push(first);
  }
  return out;
}

/** Output extent of a sliding window: floor((n + pads - extent) / stride) + 1, numeric or canonical. */
function windowDim(n: Dim, padTotal: number, extent: number, stride: number, ceil: boolean): Dim {
  const offset = padTotal - extent;
  if (typeof n === 'number') return (ceil ? Math.ceil : Math.floor)((n + offset) / stride) + 1;
  if (stride === 1 && offset === -1) return n;
  return `${ceil ? 'c' : 'f'}(${n},${offset},${stride})`;
}

/**
 * Symbolic shapes where we can tell them from the graph: enough to prove that two tensors have the same
 * shape (a residual Add's operands), so their gradients need no un-broadcasting at run time.
 */
export function inferShapes(graph: OnnxGraph): Map<string, Dim[]> {
  const shapes = new Map<string, Dim[]>();
  for (const value of graph.graph.input ?? []) {
    const dims = value.type?.tensorType?.shape?.dim;
    if (!dims || !value.name) continue;
    shapes.set(
      value.name,
      dims.map((d, i) =>
        d.dimValue !== null && d.dimValue !== undefined && toNumber(d.dimValue) > 0
          ? toNumber(d.dimValue)
          : d.dimParam || `${value.name}:${i}`,
      ),
    );
  }
  for (const [name, init] of graph.initializers) shapes.set(name, tensorDims(init));
  for (const node of graph.nodes) {
    const inputs = node.input ?? [];
    const x = shapes.get(inputs[0] ?? '');
    const y = node.output?.[0];
    if (!y) continue;
    let out: Dim[] | undefined;
    const op = node.opType ?? '';
    if (SAME_SHAPE.has(op)) out = x;
    else if (BROADCAST.has(op)) out = broadcast(inputs.map((name) => shapes.get(name)));
    else if ((op === 'Conv' || op === 'MaxPool' || op === 'AveragePool') && x) {
      const weight = op === 'Conv' ? shapes.get(inputs[1] ?? '') : undefined;
      const kernel = intsAttr(node, 'kernel_shape') ?? weight?.slice(2).map(Number);
      const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
      if (kernel && (autoPad === 'NOTSET' || autoPad === 'VALID') && (op !== 'Conv' || typeof weight?.[0] === 'number')) {
        const n = kernel.length;
        const strides = intsAttr(node, 'strides') ?? new Array(n).fill(1);
        const dilations = intsAttr(node, 'dilations') ?? new Array(n).fill(1);
        const pads = autoPad === 'VALID' ? new Array(2 * n).fill(0) : (intsAttr(node, 'pads') ?? new Array(2 * n).fill(0));
        const ceil = intAttr(node, 'ceil_mode', 0) === 1;
        const spatial = x
          .slice(2)
          .map((d, i) =>
            windowDim(
              d,
              (pads[i] as number) + (pads[i + n] as number),
              ((kernel[i] as number) - 1) * (dilations[i] as number) + 1,
              strides[i] as number,
              ceil,
            ),
          );
        out = [x[0] as Dim, op === 'Conv' ? (weight?.[0] as Dim) : (x[1] as Dim), ...spatial];
      }
    } else if ((op === 'GlobalAveragePool' || op === 'GlobalMaxPool') && x) {
      out = [...x.slice(0, 2), ...x.slice(2).map(() => 1)];
    }
    if (out) shapes.set(y, out);
  }
  return shapes;
}

export function sameShape(shapes: Map<string, Dim[]>, a: string, b: string): boolean {
  const sa = shapes.get(a);
  const sb = shapes.get(b);
  return !!sa && !!sb && sa.length === sb.length && sa.every((d, i) => d === sb[i]);
}
