import { CamerasError, ExitCode } from '../../errors.js';
import type { AttributeInput, OnnxGraph } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { type Dim, sameShape } from '../shapes.js';

/** Choices between equivalent rules (see `GradientGraphOptions`). */
export interface VjpOptions {
  readonly maxPoolIndices?: boolean;
}

/**
 * What a vector-Jacobian rule may do: add nodes to the graph, ask static ranks, and use a few shared
 * building blocks (shapes, constants, broadcasting undone). Rules only add nodes; they never edit the
 * forward graph, except MaxPool which asks for its Indices output (unless `maxPoolIndices` is false).
 */
export class VjpContext {
  readonly graph: OnnxGraph;
  readonly options: VjpOptions;
  private readonly ranks: Map<string, number>;
  private readonly shapes = new Map<string, string>();
  private readonly constants = new Map<string, string>();
  /** The lowest ai.onnx opset the emitted nodes need (ScatterElements with reduction asks 16). */
  requiredOpset = 13;

  /** Symbolic shapes of forward tensors, where the graph tells them. */
  private readonly forwardShapes: Map<string, Dim[]>;

  constructor(graph: OnnxGraph, ranks: Map<string, number>, forwardShapes: Map<string, Dim[]> = new Map(), options: VjpOptions = {}) {
    this.graph = graph;
    this.options = options;
    this.ranks = ranks;
    this.forwardShapes = forwardShapes;
  }

  /** True when the graph proves the two forward tensors have one shape. */
  sameShape(a: string, b: string): boolean {
    return sameShape(this.forwardShapes, a, b);
  }

  op(opType: string, inputs: string[], attributes: Record<string, AttributeInput> = {}): string {
    return this.graph.addNode(opType, inputs, attributes, { name: `cameras_grad/${opType}` })[0] as string;
  }

  ops(opType: string, inputs: string[], attributes: Record<string, AttributeInput>, count: number): string[] {
    return this.graph.addNode(opType, inputs, attributes, { name: `cameras_grad/${opType}`, outputCount: count });
  }

  /** Static rank of a forward tensor; a rule that needs one we cannot tell fails with the node named. */
  rank(name: string, node: NodeProto): number {
    const rank = this.ranks.get(name);
    if (rank === undefined) {
      throw unsupported(node, `the rank of tensor '${name}' is unknown (export the model with shape information)`);
    }
    return rank;
  }

  knownRank(name: string): number | undefined {
    return this.ranks.get(name);
  }

  /** `Shape(x)`, made once per tensor. */
  shape(name: string): string {
    let shape = this.shapes.get(name);
    if (!shape) {
      shape = this.op('Shape', [name]);
      this.shapes.set(name, shape);
    }
    return shape;
  }

  /** Dimensions `[start, end)` of `Shape(x)` as an int64 vector. */
  dims(name: string, start: number, end?: number): string {
    const shape = this.shape(name);
    return this.op('Slice', [shape, this.int64([start]), this.int64([end ?? 2 ** 62])]);
  }

  int64(values: number[]): string {
    return this.cached(`i64:${values.join(',')}`, () => this.graph.addConstant('cameras_grad/const', values, [values.length], 'int64'));
  }

  int64Scalar(value: number): string {
    return this.cached(`i64s:${value}`, () => this.graph.addConstant('cameras_grad/const', [value], [], 'int64'));
  }

  float(value: number): string {
    return this.cached(`f32:${value}`, () => this.graph.addConstant('cameras_grad/const', [value], [], 'float'));
  }

  floatTensor(values: Float32Array | number[], dims: number[]): string {
    return this.graph.addConstant('cameras_grad/const', values, dims, 'float');
  }

  private cached(key: string, make: () => string): string {
    let name = this.constants.get(key);
    if (!name) {
      name = make();
      this.constants.set(key, name);
    }
    return name;
  }

  /** Float zeros of the shape of `like`. */
  zerosLike(like: string): string {
    return this.op('ConstantOfShape', [this.shape(like)], { value: floatScalarTensor(0) });
  }

  /**
   * Sums `grad` over the axes that broadcasting expanded, so it has the shape of `like` again.
   * Sizes are only known at run time, so the axes are found there; with none to reduce it is a no-op.
   */
  unbroadcast(grad: string, like: string, gradRank: number, likeRank: number): string {
    let likeShape = this.shape(like);
    if (likeRank < gradRank) {
      likeShape = this.op('Concat', [this.int64(new Array(gradRank - likeRank).fill(1)), likeShape], { axis: 0 });
    }
    const one = this.int64([1]);
    const expanded = this.op('And', [this.op('Equal', [likeShape, one]), this.op('Not', [this.op('Equal', [this.shape(grad), one])])]);
    const axes = this.op('Reshape', [this.op('NonZero', [expanded]), this.int64([-1])]);
    const summed = this.op('ReduceSum', [grad, axes], { keepdims: 1, noop_with_empty_axes: 1 });
    return this.op('Reshape', [summed, this.shape(like)]);
  }

  /**
   * The adjoint of a pure data-movement op `move` (Slice, Pad in reflect/edge mode...): apply `move` to
   * the element indices of `x`, then scatter-add `grad` back to those indices.
   */
  scatterThroughIndices(x: string, grad: string, move: (indices: string) => string, duplicates: boolean): string {
    const size = this.op('Reshape', [this.op('Size', [x]), this.int64([1])]);
    const count = this.op('Size', [x]);
    const iota = this.op('Reshape', [this.op('Range', [this.int64Scalar(0), count, this.int64Scalar(1)]), this.shape(x)]);
    const moved = this.op('Reshape', [move(iota), this.int64([-1])]);
    const zeros = this.op('ConstantOfShape', [size], { value: floatScalarTensor(0) });
    const flatGrad = this.op('Reshape', [grad, this.int64([-1])]);
    const attrs: Record<string, AttributeInput> = { axis: 0 };
    if (duplicates) {
      attrs.reduction = 'add';
      this.requiredOpset = Math.max(this.requiredOpset, 16);
    }
    const scattered = this.op('ScatterElements', [zeros, moved, flatGrad], attrs);
    return this.op('Reshape', [scattered, this.shape(x)]);
  }
}

export function floatScalarTensor(value: number) {
  return {
    name: '',
    dims: [1],
    dataType: 1,
    rawData: new Uint8Array(Float32Array.of(value).buffer),
  };
}

export function unsupported(node: NodeProto, why: string): CamerasError {
  return new CamerasError(
    `cannot differentiate ${node.opType} node '${node.name ?? '?'}': ${why}; choose a target layer after it or re-export the model without it`,
    ExitCode.unsupportedModel,
  );
}
