import { attribute, intAttr, intsAttr, type OnnxGraph, stringAttr, tensorDims } from './graph.js';
import type { NodeProto } from './proto.js';
import { SAME_SHAPE as SHAPE_PRESERVING } from './shapes.js';

// Shape-preserving: the symbolic inference's list (shapes.ts), and the normalisations, Gelu and Not.
const SAME_SHAPE = new Set([...SHAPE_PRESERVING, 'LayerNormalization', 'InstanceNormalization', 'LRN', 'Gelu', 'Not']);
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

/** A constant's values where they are numbers (a boolean or string constant has none here). */
function readable(graph: OnnxGraph, name: string): number[] | undefined {
  try {
    return graph.constantValues(name);
  } catch {
    return undefined;
  }
}

/** Element-wise on two value lists, the shorter (a scalar) broadcast. */
function zipValues(a: number[], b: number[], f: (x: number, y: number) => number): number[] | undefined {
  if (a.length !== b.length && a.length !== 1 && b.length !== 1) return undefined;
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) =>
    f(a[a.length === 1 ? 0 : i] as number, b[b.length === 1 ? 0 : i] as number),
  );
}

const VALUE_OPS: Record<string, (x: number, y: number) => number> = {
  Add: (x, y) => x + y,
  Sub: (x, y) => x - y,
  Mul: (x, y) => x * y,
  // Shape arithmetic is integer: ONNX's integer Div truncates.
  Div: (x, y) => Math.trunc(x / y),
  Mod: (x, y) => x - y * Math.floor(x / y),
  Equal: (x, y) => (x === y ? 1 : 0),
  Less: (x, y) => (x < y ? 1 : 0),
  Greater: (x, y) => (x > y ? 1 : 0),
  Max: (x, y) => Math.max(x, y),
  Min: (x, y) => Math.min(x, y),
};

/** A row-major tensor's values permuted as Transpose permutes its axes. */
function permuteValues(values: number[], shape: number[], perm: number[]): number[] {
  return pickValues(
    values,
    shape,
    shape.map((d) => Array.from({ length: d }, (_, i) => i)),
    perm,
  );
}

/** The values at the cross product of `picked` indices per axis, the axes read in `order` (row-major). */
function pickValues(values: number[], shape: number[], picked: number[][], order = shape.map((_, i) => i)): number[] {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  let offsets = [0];
  for (const axis of order) offsets = offsets.flatMap((o) => (picked[axis] as number[]).map((i) => o + i * (strides[axis] as number)));
  return offsets.map((o) => values[o] as number);
}

/** Slice's starts/ends clamped as ONNX clamps them, for one axis of `size`. */
function sliceRange(size: number, start: number, end: number, step: number): number[] {
  const clamp = (v: number, low: number, high: number) => Math.min(Math.max(v < 0 ? v + size : v, low), high);
  const from = step > 0 ? clamp(start, 0, size) : clamp(start, 0, size - 1);
  const to = step > 0 ? clamp(end, 0, size) : end < -size ? -1 : clamp(end, -1, size - 1);
  const picked: number[] = [];
  for (let i = from; step > 0 ? i < to : i > to; i += step) picked.push(i);
  return picked;
}

/**
 * The shape of every tensor the common image-model ops make, for one input shape (numbers only): enough to size a
 * pass before running it. The values of small integer tensors (a transformer's shape arithmetic: Shape, Gather,
 * Concat, Slice, Unsqueeze, integer Mul/Div, Where, ...) are followed too, so a Reshape whose target is computed at
 * run time, and so a transformer's tokens and attention maps, are sized. Ops it does not know leave their outputs
 * out (the sizes it gives are then a lower bound).
 */
export function tensorShapesAt(graph: OnnxGraph, inputShape: number[]): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const values = new Map<string, number[]>();
  const input = graph.inputNames[0];
  if (input) shapes.set(input, inputShape);
  for (const [name, init] of graph.initializers) shapes.set(name, tensorDims(init));
  const constant = (name: string | undefined): number[] | undefined => {
    if (!name) return undefined;
    const known = values.get(name);
    if (known) return known;
    const init = graph.initializers.get(name);
    // Only small integer-like tensors are values: a weight is not read element by element here.
    if (init && tensorDims(init).reduce((a, b) => a * b, 1) > 64) return undefined;
    return readable(graph, name);
  };
  for (const node of graph.nodes) {
    const inputs = node.input ?? [];
    const x = shapes.get(inputs[0] ?? '');
    const y = node.output?.[0];
    if (!y) continue;
    const op = node.opType ?? '';
    let out: number[] | undefined;
    let value: number[] | undefined;
    const a = constant(inputs[0]);
    const b = constant(inputs[1]);
    if (op === 'Constant') {
      const attr = attribute(node, 'value');
      out = attr && typeof attr === 'object' && !Array.isArray(attr) && !(attr instanceof Float32Array) ? tensorDims(attr) : [1];
      const held = readable(graph, y);
      if (held && held.length <= 64) value = held;
    } else if (op === 'Shape' && x) {
      const start = intAttr(node, 'start', 0);
      const end = intAttr(node, 'end', x.length);
      value = x.slice(start, end === 0 ? 0 : end);
      out = [value.length];
    } else if (SAME_SHAPE.has(op)) {
      out = x;
      if (a && (op === 'Cast' || op === 'Identity')) value = a;
    } else if (BROADCAST.has(op) || op in VALUE_OPS || op === 'And' || op === 'Or') {
      out = broadcast(inputs.map((name) => shapes.get(name)));
      if (op === 'Where') {
        const [condition, yes, no] = inputs.map(constant);
        if (condition && yes && no)
          value = Array.from({ length: Math.max(condition.length, yes.length, no.length) }, (_, i) =>
            condition[condition.length === 1 ? 0 : i] ? (yes[yes.length === 1 ? 0 : i] as number) : (no[no.length === 1 ? 0 : i] as number),
          );
      } else if (a && b && VALUE_OPS[op]) value = zipValues(a, b, VALUE_OPS[op] as (x: number, y: number) => number);
    } else if ((op === 'Conv' || op === 'MaxPool' || op === 'AveragePool') && x) out = window(node, x, shapes.get(inputs[1] ?? ''));
    else if ((op === 'GlobalAveragePool' || op === 'GlobalMaxPool') && x) out = [...x.slice(0, 2), ...x.slice(2).map(() => 1)];
    else if (op === 'Concat') {
      const parts = inputs.map((name) => shapes.get(name));
      if (parts.every(Boolean) && parts.length > 0) {
        const first = parts[0] as number[];
        const axis = (intAttr(node, 'axis', 0) + first.length) % first.length;
        out = first.map((d, i) => (i === axis ? parts.reduce((s, p) => s + ((p as number[])[i] as number), 0) : d));
      }
      const pieces = inputs.map(constant);
      if (pieces.every(Boolean)) value = pieces.flatMap((p) => p as number[]);
    } else if (op === 'Pad' && x) {
      const pads = constant(inputs[1]) ?? intsAttr(node, 'pads');
      if (pads && pads.length === 2 * x.length) out = x.map((d, i) => d + (pads[i] as number) + (pads[i + x.length] as number));
    } else if (op === 'Flatten' && x) {
      const axis = intAttr(node, 'axis', 1);
      out = [x.slice(0, axis).reduce((a, b) => a * b, 1), x.slice(axis).reduce((a, b) => a * b, 1)];
    } else if (op === 'Gemm' && x) {
      const w = shapes.get(inputs[1] ?? '');
      if (w) out = [x[intAttr(node, 'transA', 0) ? 1 : 0] as number, w[intAttr(node, 'transB', 0) ? 0 : 1] as number];
    } else if (op === 'MatMul' && x) {
      const w = shapes.get(inputs[1] ?? '');
      if (w) {
        const left = x.length === 1 ? [1, ...x] : x;
        const right = w.length === 1 ? [...w, 1] : w;
        const batch = broadcast([left.slice(0, -2), right.slice(0, -2)]) as number[];
        out = [
          ...batch,
          ...(x.length === 1 ? [] : [left[left.length - 2] as number]),
          ...(w.length === 1 ? [] : [right[right.length - 1] as number]),
        ];
      }
    } else if (op === 'Reshape' && x) {
      const target = b;
      if (target) {
        const total = x.reduce((a, b) => a * b, 1);
        const dims = target.map((d, i) => (d === 0 ? (x[i] as number) : d));
        const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        out = dims.map((d) => (d === -1 ? total / known : d));
        if (a) value = a;
      }
    } else if (op === 'Transpose' && x) {
      const perm = intsAttr(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      out = perm.map((p) => x[p] as number);
      if (a) value = permuteValues(a, x, perm);
    } else if (op === 'Gather' && x) {
      const indicesShape = shapes.get(inputs[1] ?? '') ?? (b?.length === 1 ? [] : undefined);
      const axis = (intAttr(node, 'axis', 0) + x.length) % x.length;
      if (indicesShape) out = [...x.slice(0, axis), ...indicesShape, ...x.slice(axis + 1)];
      if (a && b && x.length === 1) value = b.map((i) => a[i < 0 ? i + a.length : i] as number);
    } else if ((op === 'Unsqueeze' || op === 'Squeeze') && x) {
      const given = b ?? intsAttr(node, 'axes');
      if (op === 'Unsqueeze' && given) {
        const rank = x.length + given.length;
        const axes = given.map((g) => (g + rank) % rank);
        let k = 0;
        out = Array.from({ length: rank }, (_, i) => (axes.includes(i) ? 1 : (x[k++] as number)));
      } else if (op === 'Squeeze') {
        const axes = given?.map((g) => (g + x.length) % x.length);
        out = x.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
      }
      if (a) value = a;
    } else if (op === 'Slice' && x) {
      const starts = b ?? intsAttr(node, 'starts');
      const ends = constant(inputs[2]) ?? intsAttr(node, 'ends');
      const axes = constant(inputs[3]) ?? intsAttr(node, 'axes') ?? starts?.map((_, i) => i);
      const steps = constant(inputs[4]) ?? starts?.map(() => 1);
      if (starts && ends && axes && steps) {
        const picked = x.map((d) => Array.from({ length: d }, (_, i) => i));
        axes.forEach((axis, i) => {
          const at = (axis + x.length) % x.length;
          picked[at] = sliceRange(x[at] as number, starts[i] as number, ends[i] as number, steps[i] as number);
        });
        out = picked.map((p) => p.length);
        if (a) value = pickValues(a, x, picked);
      }
    } else if (op === 'ConstantOfShape' && a) {
      out = a;
      const fill = readable(graph, y);
      if (a.reduce((p, q) => p * q, 1) <= 64) value = new Array(a.reduce((p, q) => p * q, 1)).fill(fill?.[0] ?? 0);
    } else if (op === 'Expand' && x && b) out = broadcast([x, b]);
    else if (op === 'Range') {
      const [start, limit, delta] = inputs.map(constant).map((v) => v?.[0]);
      if (start !== undefined && limit !== undefined && delta) {
        const count = Math.max(Math.ceil((limit - start) / delta), 0);
        out = [count];
        if (count <= 64) value = Array.from({ length: count }, (_, i) => start + i * delta);
      }
    } else if ((op === 'ReduceMean' || op === 'ReduceSum' || op === 'ReduceMax') && x) {
      const axes = (op === 'ReduceSum' || graph.opset >= 18 ? b : undefined) ?? intsAttr(node, 'axes');
      const keep = intAttr(node, 'keepdims', 1) === 1;
      const reduced = (axes ?? x.map((_, i) => i)).map((i) => (i + x.length) % x.length);
      out = keep ? x.map((d, i) => (reduced.includes(i) ? 1 : d)) : x.filter((_, i) => !reduced.includes(i));
    } else if (op === 'Split' && x) {
      const axis = (intAttr(node, 'axis', 0) + x.length) % x.length;
      const outputs = node.output ?? [];
      const sizes = b ?? intsAttr(node, 'split') ?? outputs.map(() => (x[axis] as number) / outputs.length);
      outputs.forEach((name, i) => {
        if (name)
          shapes.set(
            name,
            x.map((d, j) => (j === axis ? (sizes[i] as number) : d)),
          );
      });
    } else if (op === 'ScatterND' && x) out = x;
    if (out) shapes.set(y, out);
    if (value) values.set(y, value);
  }
  return shapes;
}

/**
 * Bytes of float32 tensors the forward pass makes at `inputShape` (those `tensorShapesAt` knows), of those whose
 * element count `keep` accepts.
 */
export function forwardBytes(
  graph: OnnxGraph,
  inputShape: number[],
  keep: (elements: number) => boolean = () => true,
  shapes: Map<string, number[]> = tensorShapesAt(graph, inputShape),
): number {
  let total = 0;
  for (const node of graph.nodes) {
    if (node.opType === 'Constant') continue;
    for (const name of node.output ?? []) {
      const shape = name ? shapes.get(name) : undefined;
      const elements = shape?.reduce((a, b) => a * b, 1) ?? 0;
      if (elements > 0 && keep(elements)) total += 4 * elements;
    }
  }
  return total;
}
