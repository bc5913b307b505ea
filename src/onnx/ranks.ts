import { attribute, intAttr, intsAttr, type OnnxGraph, tensorDims } from './graph.js';
import type { TensorProto } from './proto.js';

/**
 * Static rank of every tensor we can tell without running the model. Gradient rules need ranks (for
 * inverse permutations, per-channel broadcasts); sizes stay dynamic and come from `Shape` at run time.
 */
export function inferRanks(graph: OnnxGraph): Map<string, number> {
  const ranks = new Map<string, number>();
  // The length of 1-D integer tensors built from shapes (a transformer's Reshape to Concat(n, h*w, c)): the rank
  // they give the tensors they shape.
  const lengths = new Map<string, number>();
  for (const value of [...(graph.graph.input ?? []), ...(graph.graph.valueInfo ?? []), ...(graph.graph.output ?? [])]) {
    const dims = value.type?.tensorType?.shape?.dim;
    if (dims && value.name) ranks.set(value.name, dims.length);
  }
  for (const [name, init] of graph.initializers) ranks.set(name, tensorDims(init).length);
  for (const node of graph.nodes) {
    const inputs = node.input ?? [];
    const outputs = node.output ?? [];
    const r = (i: number): number | undefined => (inputs[i] ? ranks.get(inputs[i]) : undefined);
    const set = (value: number | undefined, slot = 0): void => {
      if (value !== undefined && outputs[slot] && !ranks.has(outputs[slot])) ranks.set(outputs[slot], value);
    };
    const setAll = (value: number | undefined): void => {
      for (let slot = 0; slot < outputs.length; slot++) set(value, slot);
    };
    const length = (i: number): number | undefined => {
      const name = inputs[i] ?? '';
      const known = lengths.get(name);
      if (known !== undefined) return known;
      if (ranks.get(name) === 0) return 1;
      const values = graph.constantValues(name);
      return values && ranks.get(name) === 1 ? values.length : undefined;
    };
    const lengthOf = shapeLength(node, inputs, length, r, graph, lengths);
    if (lengthOf !== undefined && outputs[0]) lengths.set(outputs[0], lengthOf);
    switch (node.opType) {
      case 'Constant': {
        const value = attribute(node, 'value');
        if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Float32Array)) {
          set(tensorDims(value as TensorProto).length);
        } else if (Array.isArray(attribute(node, 'value_ints'))) set(1);
        else set(0);
        break;
      }
      case 'Shape':
      case 'Range':
        set(1);
        break;
      case 'NonZero':
        set(2);
        break;
      case 'Size':
        set(0);
        break;
      case 'Gemm':
        set(2);
        break;
      case 'Flatten':
        set(2);
        break;
      case 'MatMul': {
        const a = r(0);
        const b = r(1);
        if (a !== undefined && b !== undefined) set(Math.max(a, b, 2) - (a === 1 || b === 1 ? 1 : 0));
        break;
      }
      case 'Reshape': {
        const shape = graph.constantValues(inputs[1] ?? '');
        const shapeOf = graph.producers.get(inputs[1] ?? '')?.node;
        if (shape) set(shape.length);
        else if (length(1) !== undefined) set(length(1));
        else if (shapeOf?.opType === 'Shape' && (shapeOf.attribute ?? []).length === 0) {
          set(ranks.get(shapeOf.input?.[0] ?? ''));
        } else {
          const dims = inputs[1] ? graph.declaredShape(inputs[1]) : undefined;
          if (dims && dims.length === 1 && dims[0] !== undefined && dims[0] > 0) set(dims[0]);
        }
        break;
      }
      case 'Squeeze': {
        const axes = intsAttr(node, 'axes') ?? graph.constantValues(inputs[1] ?? '');
        const x = r(0);
        if (x !== undefined && axes) set(x - axes.length);
        break;
      }
      case 'Unsqueeze': {
        const axes = intsAttr(node, 'axes') ?? graph.constantValues(inputs[1] ?? '');
        const x = r(0);
        if (x !== undefined && axes) set(x + axes.length);
        break;
      }
      case 'ReduceMean':
      case 'ReduceSum':
      case 'ReduceMax':
      case 'ReduceMin':
      case 'ReduceProd':
      case 'ReduceL2':
      case 'ArgMax':
      case 'ArgMin': {
        const x = r(0);
        if (x === undefined) break;
        if (intAttr(node, 'keepdims', 1) === 1) set(x);
        else {
          const axes = intsAttr(node, 'axes') ?? graph.constantValues(inputs[1] ?? '');
          if (node.opType.startsWith('Arg')) set(x - 1);
          else set(axes && axes.length > 0 ? x - axes.length : 0);
        }
        break;
      }
      case 'Expand': {
        const shape = length(1);
        const x = r(0);
        if (shape !== undefined && x !== undefined) set(Math.max(shape, x));
        break;
      }
      case 'ConstantOfShape':
        set(length(0));
        break;
      case 'Gather': {
        const x = r(0);
        const idx = r(1);
        if (x !== undefined && idx !== undefined) set(x - 1 + idx);
        break;
      }
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
      case 'Pow':
      case 'Where':
      case 'Equal':
      case 'Greater':
      case 'Less':
      case 'GreaterOrEqual':
      case 'LessOrEqual':
      case 'And':
      case 'Or':
      case 'Max':
      case 'Min':
      case 'Sum':
      case 'Mean':
      case 'PRelu': {
        const known = inputs.map((_, i) => r(i));
        if (known.every((v) => v !== undefined)) set(Math.max(...(known as number[])));
        break;
      }
      default:
        // Every other op we meet in CNN classifiers keeps its first input's rank (Conv, pools, activations,
        // BatchNormalization, Concat, Split, Slice, Pad, Transpose, Softmax, Resize, Clip, Cast, ...).
        setAll(r(0));
    }
  }
  return ranks;
}

/** The length of a node's 1-D integer output computed from shapes and constants, where it is static. */
function shapeLength(
  node: { opType?: string | null; attribute?: unknown },
  inputs: string[],
  length: (i: number) => number | undefined,
  rank: (i: number) => number | undefined,
  graph: OnnxGraph,
  lengths: Map<string, number>,
): number | undefined {
  const op = node.opType ?? '';
  const n = node as Parameters<typeof intAttr>[0];
  switch (op) {
    case 'Shape': {
      const known = rank(0);
      if (known === undefined) return undefined;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + known : v, 0), known);
      return clamp(intAttr(n, 'end', known)) - clamp(intAttr(n, 'start', 0));
    }
    case 'ConstantOfShape': {
      // Its length is the value of its 1-element input: a constant, or the shape of a 1-D tensor of known length.
      const value = graph.constantValues(inputs[0] ?? '');
      if (value?.length === 1) return value[0];
      const made = graph.producers.get(inputs[0] ?? '')?.node;
      const of = made?.opType === 'Shape' && (made.attribute ?? []).length === 0 ? (made.input?.[0] ?? '') : '';
      return of ? lengths.get(of) : undefined;
    }
    case 'Reshape': {
      const to = graph.constantValues(inputs[1] ?? '');
      if (to?.length !== 1) return undefined;
      return (to[0] as number) > 0 ? to[0] : rank(0) === 1 ? length(0) : undefined;
    }
    case 'Concat':
      return inputs.every((_, i) => length(i) !== undefined) ? inputs.reduce((sum, _, i) => sum + (length(i) as number), 0) : undefined;
    case 'Unsqueeze':
      return length(0) === 1 ? 1 : undefined;
    case 'Cast':
    case 'Identity':
    case 'Neg':
    case 'Abs':
    case 'Floor':
    case 'Ceil':
      return length(0);
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Mod':
    case 'Max':
    case 'Min':
    case 'Equal':
    case 'Where': {
      const known = inputs.map((_, i) => length(i));
      return known.every((v) => v !== undefined) ? Math.max(...(known as number[])) : undefined;
    }
    case 'Gather': {
      const indices = graph.constantValues(inputs[1] ?? '');
      return indices && length(0) !== undefined ? indices.length : undefined;
    }
    case 'Slice': {
      const size = length(0);
      const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => (inputs[i] ? graph.constantValues(inputs[i] as string) : undefined));
      if (size === undefined || !starts || !ends || axes?.some((a) => a !== 0 && a !== -1)) return undefined;
      const step = steps?.[0] ?? 1;
      const clamp = (v: number, low: number, high: number) => Math.min(Math.max(v < 0 ? v + size : v, low), high);
      const start = clamp(starts[0] as number, step > 0 ? 0 : -1, step > 0 ? size : size - 1);
      const end = clamp(ends[0] as number, step > 0 ? 0 : -1, step > 0 ? size : size - 1);
      return Math.max(0, Math.ceil((end - start) / step));
    }
    default:
      return undefined;
  }
}
