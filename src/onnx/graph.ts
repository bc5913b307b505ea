import { CamerasError } from '../errors.js';
import {
  type AttributeProto,
  AttributeType,
  DataType,
  decodeModel,
  encodeModel,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  onnx,
  type TensorProto,
  toNumber,
} from './proto.js';

export type AttributeValue = number | number[] | string | Float32Array | TensorProto;

/** A value for a new attribute; integers and floats are told apart by the `float` wrapper. */
export type AttributeInput = number | number[] | string | { float: number } | { floats: number[] } | TensorProto;

/**
 * An ONNX model opened for reading and rewriting: node lookup by tensor, initializers by name, and
 * builders that add nodes and constants with names that cannot clash with the model's own.
 */
export class OnnxGraph {
  readonly model: ModelProto;
  readonly graph: GraphProto;
  readonly initializers = new Map<string, TensorProto>();
  /** The node that makes each tensor, with the output slot. */
  readonly producers = new Map<string, { node: NodeProto; slot: number }>();
  readonly consumers = new Map<string, NodeProto[]>();
  private readonly usedNames = new Set<string>();
  private counter = 0;

  constructor(model: ModelProto) {
    this.model = model;
    if (!model.graph) throw new CamerasError('the model has no graph; export it again');
    this.graph = model.graph;
    this.graph.node ??= [];
    this.graph.initializer ??= [];
    this.graph.input ??= [];
    this.graph.output ??= [];
    for (const init of this.graph.initializer) {
      this.initializers.set(init.name ?? '', init);
      this.usedNames.add(init.name ?? '');
    }
    for (const value of this.graph.input) this.usedNames.add(value.name ?? '');
    for (const node of this.graph.node) this.index(node);
  }

  /** A model with an empty graph, opset 16 unless told. */
  static empty(name: string, opset = 16): OnnxGraph {
    return new OnnxGraph(
      onnx.ModelProto.create({
        irVersion: 8,
        opsetImport: [{ domain: '', version: opset }],
        producerName: 'cameras-saliency',
        graph: { name, node: [], initializer: [], input: [], output: [] },
      }),
    );
  }

  static fromBytes(bytes: Uint8Array, source?: string): OnnxGraph {
    return new OnnxGraph(decodeModel(bytes, source));
  }

  toBytes(): Uint8Array {
    return encodeModel(this.model);
  }

  get nodes(): NodeProto[] {
    return this.graph.node as NodeProto[];
  }

  /**
   * Replaces the graph's nodes and rebuilds the index from them: the one way to rewrite the node list, so
   * producers and consumers always describe the nodes there are.
   */
  replaceNodes(nodes: NodeProto[]): void {
    this.graph.node = nodes;
    this.producers.clear();
    this.consumers.clear();
    for (const node of nodes) this.index(node);
  }

  /** Graph inputs that are real inputs, not initializers listed as inputs (old exporters do that). */
  get inputNames(): string[] {
    return (this.graph.input ?? []).map((v) => v.name ?? '').filter((name) => !this.initializers.has(name));
  }

  get outputNames(): string[] {
    return (this.graph.output ?? []).map((v) => v.name ?? '');
  }

  /** The version of the default (ai.onnx) operator set the model imports. */
  get opset(): number {
    const entry = (this.model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
    return entry ? toNumber(entry.version) : 1;
  }

  set opset(version: number) {
    this.model.opsetImport ??= [];
    const entry = this.model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
    if (entry) entry.version = version;
    else this.model.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: '', version }));
    // IR version 8 is what opset 16-17 require; never lower a newer one.
    if (toNumber(this.model.irVersion) < 8) this.model.irVersion = 8;
  }

  private index(node: NodeProto): void {
    if (node.name) this.usedNames.add(node.name);
    (node.output ?? []).forEach((name, slot) => {
      if (name) {
        this.producers.set(name, { node, slot });
        this.usedNames.add(name);
      }
    });
    for (const name of node.input ?? []) {
      if (!name) continue;
      const list = this.consumers.get(name);
      if (list) list.push(node);
      else this.consumers.set(name, [node]);
    }
  }

  /** A tensor or node name not used anywhere in the model. */
  freshName(base: string): string {
    let name = base;
    while (this.usedNames.has(name)) name = `${base}_${++this.counter}`;
    this.usedNames.add(name);
    return name;
  }

  /** Appends a node; returns its output names (fresh names made from `outputBase` where none are given). */
  addNode(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeInput> = {},
    options: { outputs?: string[]; outputCount?: number; name?: string } = {},
  ): string[] {
    const name = this.freshName(options.name ?? `cameras/${opType}`);
    const outputs = options.outputs ?? Array.from({ length: options.outputCount ?? 1 }, () => this.freshName(`${name}_out`));
    const node = onnx.NodeProto.create({
      opType,
      name,
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attributes).map(([key, value]) => makeAttribute(key, value)),
    });
    this.nodes.push(node);
    this.index(node);
    return outputs;
  }

  /** Adds an initializer holding `values` with shape `dims`; returns its name. */
  addConstant(base: string, values: Float32Array | BigInt64Array | number[], dims: number[], type: 'float' | 'int64' = 'float'): string {
    const name = this.freshName(base);
    const tensor = makeTensor(name, values, dims, type);
    this.graph.initializer?.push(tensor);
    this.initializers.set(name, tensor);
    return name;
  }

  /** Values of a tensor fixed at export time (an initializer or a Constant node's output), else undefined. */
  constantValues(name: string): number[] | undefined {
    const init = this.initializers.get(name);
    if (init) return tensorValues(init);
    const made = this.producers.get(name);
    if (made && made.node.opType === 'Constant') {
      const value = attribute(made.node, 'value');
      if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Float32Array)) {
        return tensorValues(value);
      }
      const ints = attribute(made.node, 'value_ints');
      if (Array.isArray(ints)) return ints;
      const single = attribute(made.node, 'value_int') ?? attribute(made.node, 'value_float');
      if (typeof single === 'number') return [single];
    }
    return undefined;
  }

  addOutput(name: string, elemType = DataType.FLOAT, dims?: (number | string)[]): void {
    if (this.outputNames.includes(name)) return;
    const shape = dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined;
    this.graph.output?.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType, shape } } }));
  }

  addInput(name: string, elemType: number, dims: (number | string)[]): void {
    this.graph.input?.push(
      onnx.ValueInfoProto.create({
        name,
        type: {
          tensorType: {
            elemType,
            shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
          },
        },
      }),
    );
    this.usedNames.add(name);
  }

  /** The static shape of a graph input or output from the model's declared types (-1 where dynamic). */
  declaredShape(name: string): number[] | undefined {
    const all = [...(this.graph.input ?? []), ...(this.graph.output ?? []), ...(this.graph.valueInfo ?? [])];
    const value = all.find((v) => v.name === name);
    const dims = value?.type?.tensorType?.shape?.dim;
    if (!dims) return undefined;
    return dims.map((d) => (d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0 ? toNumber(d.dimValue) : -1));
  }
}

export function makeAttribute(name: string, value: AttributeInput): AttributeProto {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float } for non-integers`);
    return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value });
  }
  if (typeof value === 'string') {
    return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) });
  }
  if (Array.isArray(value)) return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: value });
  if ('float' in value) return onnx.AttributeProto.create({ name, type: AttributeType.FLOAT, f: value.float });
  if ('floats' in value) return onnx.AttributeProto.create({ name, type: AttributeType.FLOATS, floats: value.floats });
  return onnx.AttributeProto.create({ name, type: AttributeType.TENSOR, t: value as TensorProto });
}

export function makeTensor(
  name: string,
  values: Float32Array | BigInt64Array | number[],
  dims: number[],
  type: 'float' | 'int64' = 'float',
): TensorProto {
  let raw: Uint8Array;
  if (type === 'float') {
    const data = values instanceof Float32Array ? values : Float32Array.from(values as number[]);
    raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  } else {
    const data = values instanceof BigInt64Array ? values : BigInt64Array.from((values as number[]).map((v) => BigInt(v)));
    raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  }
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: type === 'float' ? DataType.FLOAT : DataType.INT64,
    rawData: raw,
  });
}

/** Reads an attribute of a node, or undefined when absent. */
export function attribute(node: NodeProto, name: string): AttributeValue | undefined {
  const attr = (node.attribute ?? []).find((a) => a.name === name);
  if (!attr) return undefined;
  switch (attr.type) {
    case AttributeType.INT:
      return toNumber(attr.i);
    case AttributeType.FLOAT:
      return attr.f ?? 0;
    case AttributeType.INTS:
      return (attr.ints ?? []).map(toNumber);
    case AttributeType.FLOATS:
      return Float32Array.from(attr.floats ?? []);
    case AttributeType.STRING:
      return new TextDecoder().decode(attr.s ?? new Uint8Array());
    case AttributeType.TENSOR:
      return attr.t ?? undefined;
    default:
      return undefined;
  }
}

export function intAttr(node: NodeProto, name: string, fallback: number): number {
  const v = attribute(node, name);
  return typeof v === 'number' ? v : fallback;
}

export function floatAttr(node: NodeProto, name: string, fallback: number): number {
  const v = attribute(node, name);
  return typeof v === 'number' ? v : fallback;
}

export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const v = attribute(node, name);
  return Array.isArray(v) ? v : undefined;
}

export function stringAttr(node: NodeProto, name: string, fallback: string): string {
  const v = attribute(node, name);
  return typeof v === 'string' ? v : fallback;
}

/** Decodes a float or int64 tensor's values (raw or typed fields) to numbers. */
export function tensorValues(tensor: TensorProto): number[] {
  const type = tensor.dataType ?? DataType.UNDEFINED;
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    const buffer = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    switch (type) {
      case DataType.FLOAT:
        return Array.from(new Float32Array(buffer));
      case DataType.DOUBLE:
        return Array.from(new Float64Array(buffer));
      case DataType.INT64:
        return Array.from(new BigInt64Array(buffer), (v) => Number(v));
      case DataType.INT32:
        return Array.from(new Int32Array(buffer));
      default:
        throw new CamerasError(`cannot read tensor ${tensor.name} of ONNX data type ${type}`);
    }
  }
  if (type === DataType.FLOAT) return [...(tensor.floatData ?? [])];
  if (type === DataType.DOUBLE) return [...(tensor.doubleData ?? [])];
  if (type === DataType.INT64) return (tensor.int64Data ?? []).map(toNumber);
  if (type === DataType.INT32) return [...(tensor.int32Data ?? [])];
  throw new CamerasError(`cannot read tensor ${tensor.name} of ONNX data type ${type}`);
}

/** A float32 tensor's values as a Float32Array (copied from raw or typed data), without a per-element detour. */
export function tensorFloats(tensor: TensorProto): Float32Array | undefined {
  if (tensor.dataType !== DataType.FLOAT) return undefined;
  const raw = tensor.rawData;
  if (raw && raw.length > 0) return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  return Float32Array.from(tensor.floatData ?? []);
}

export function tensorDims(tensor: TensorProto): number[] {
  return (tensor.dims ?? []).map(toNumber);
}
