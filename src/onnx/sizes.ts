import { attribute, intAttr, intsAttr, type OnnxGraph, stringAttr, tensorDims } from './graph.js';
import type { NodeProto } from './proto.js';

const SAME_SHAPE = new Set([
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
  'LayerNormalization',
  'InstanceNormalization',
  'LRN',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Where']);

function broadcast(shapes: (number[] | undefined)[]): number[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(...shapes.map((s) => (s as number[]).length));
  return Array.from({ length: rank }, (_, i) => Math.max(...shapes.map((s) => (s as number[])[(s as number[]).length - rank + i] ?? 1)));
}

/** A window op's output: NOTSET/VALID pads, or SAME (ceil(n / stride)). */
function window(node: NodeProto, x: number[], weight: number[] | undefined): number[] | undefined {
  const kernel = intsAttr(node, 'kernel_shape') ?? weight?.slice(2);
  if (!kernel) return undefined;
  const n = kernel.length;
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  const strides = intsAttr(node, 'strides') ?? new Array(n).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array(n).fill(1);
  const pads = intsAttr(node, 'pads') ?? new Array(2 * n).fill(0);
  const ceil = intAttr(node, 'ceil_mode', 0) === 1;
  const spatial = x.slice(2).map((size, i) => {
    const stride = strides[i] as number;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(size / stride);
    const extent = ((kernel[i] as number) - 1) * (dilations[i] as number) + 1;
    const total = autoPad === 'VALID' ? 0 : (pads[i] as number) + (pads[i + n] as number);
    return (ceil ? Math.ceil : Math.floor)((size + total - extent) / stride) + 1;
  });
  return [
    x[0] as number,
    node.opType === 'Conv' || node.opType === 'ConvTranspose' ? (weight?.[0] as number) : (x[1] as number),
    ...spatial,
  ];
}

/**
 * The shape of every tensor the common image-model ops make, for one input shape (numbers only): enough to size a
 * pass before running it. Ops it does not know leave their outputs out (the sizes it gives are then a lower bound).
 */
export function tensorShapesAt(graph: OnnxGraph, inputShape: number[]): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const input = graph.inputNames[0];
  if (input) shapes.set(input, inputShape);
  for (const [name, init] of graph.initializers) shapes.set(name, tensorDims(init));
  const constant = (name: string | undefined) => (name ? graph.constantValues(name) : undefined);
  for (const node of graph.nodes) {
    const inputs = node.input ?? [];
    const x = shapes.get(inputs[0] ?? '');
    const y = node.output?.[0];
    if (!y) continue;
    const op = node.opType ?? '';
    let out: number[] | undefined;
    if (op === 'Constant') {
      const value = attribute(node, 'value');
      out = value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Float32Array) ? tensorDims(value) : [1];
    } else if (SAME_SHAPE.has(op)) out = x;
    else if (BROADCAST.has(op)) out = broadcast(inputs.map((name) => shapes.get(name)));
    else if ((op === 'Conv' || op === 'MaxPool' || op === 'AveragePool') && x) out = window(node, x, shapes.get(inputs[1] ?? ''));
    else if ((op === 'GlobalAveragePool' || op === 'GlobalMaxPool') && x) out = [...x.slice(0, 2), ...x.slice(2).map(() => 1)];
    else if (op === 'Concat') {
      const parts = inputs.map((name) => shapes.get(name));
      if (parts.every(Boolean) && parts.length > 0) {
        const first = parts[0] as number[];
        const axis = (intAttr(node, 'axis', 0) + first.length) % first.length;
        out = first.map((d, i) => (i === axis ? parts.reduce((s, p) => s + ((p as number[])[i] as number), 0) : d));
      }
    } else if (op === 'Pad' && x) {
      const pads = constant(inputs[1]) ?? intsAttr(node, 'pads');
      if (pads && pads.length === 2 * x.length) out = x.map((d, i) => d + (pads[i] as number) + (pads[i + x.length] as number));
    } else if (op === 'Flatten' && x) {
      const axis = intAttr(node, 'axis', 1);
      out = [x.slice(0, axis).reduce((a, b) => a * b, 1), x.slice(axis).reduce((a, b) => a * b, 1)];
    } else if (op === 'Gemm' && x) {
      const w = shapes.get(inputs[1] ?? '');
      if (w) out = [x[intAttr(node, 'transA', 0) ? 1 : 0] as number, w[intAttr(node, 'transB', 0) ? 0 : 1] as number];
    } else if (op === 'Reshape' && x) {
      const target = constant(inputs[1]);
      if (target) {
        const total = x.reduce((a, b) => a * b, 1);
        const dims = target.map((d, i) => (d === 0 ? (x[i] as number) : d));
        const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        out = dims.map((d) => (d === -1 ? total / known : d));
      }
    } else if (op === 'Transpose' && x) {
      const perm = intsAttr(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      out = perm.map((p) => x[p] as number);
    }
    if (out) shapes.set(y, out);
  }
  return shapes;
}

/** Bytes of float32 tensors the forward pass makes at `inputShape` (those `tensorShapesAt` knows). */
export function forwardBytes(graph: OnnxGraph, inputShape: number[]): number {
  const shapes = tensorShapesAt(graph, inputShape);
  let total = 0;
  for (const node of graph.nodes) {
    if (node.opType === 'Constant') continue;
    for (const name of node.output ?? []) {
      const shape = name ? shapes.get(name) : undefined;
      if (shape) total += 4 * shape.reduce((a, b) => a * b, 1);
    }
  }
  return total;
}
