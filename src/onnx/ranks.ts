import { attribute, intAttr, intsAttr, type OnnxGraph, tensorDims } from './graph.js';
import type { TensorProto } from './proto.js';

/**
 * Static rank of every tensor we can tell without running the model. Gradient rules need ranks (for
 * inverse permutations, per-channel broadcasts); sizes stay dynamic and come from `Shape` at run time.
 */
export function inferRanks(graph: OnnxGraph): Map<string, number> {
  const ranks = new Map<string, number>();
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
        const shape = graph.constantValues(inputs[1] ?? '');
        const x = r(0);
        if (shape && x !== undefined) set(Math.max(shape.length, x));
        break;
      }
      case 'ConstantOfShape': {
        const shape = graph.constantValues(inputs[0] ?? '');
        if (shape) set(shape.length);
        break;
      }
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
