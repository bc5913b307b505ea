import { CamerasError } from '../errors.js';
import { mulberry32 } from '../random.js';
import { makeTensor, OnnxGraph, tensorDims } from './graph.js';
import type { NodeProto } from './proto.js';

/** A layer whose weights a sanity check can randomise: the node and its weight (and bias) initialisers. */
export interface ParameterLayer {
  node: NodeProto;
  /** The node's name, or its output's. */
  name: string;
  weight: string;
  bias?: string;
}

const WEIGHTED = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/** The layers with weights, in the graph's (topological) order: the first is nearest the input. */
export function parameterLayers(graph: OnnxGraph): ParameterLayer[] {
  const layers: ParameterLayer[] = [];
  for (const node of graph.nodes) {
    if (!WEIGHTED.has(node.opType ?? '')) continue;
    const [, weight, bias] = node.input ?? [];
    if (!weight || !graph.initializers.has(weight)) continue;
    layers.push({
      node,
      name: node.name || (node.output?.[0] ?? ''),
      weight,
      ...(bias && graph.initializers.has(bias) ? { bias } : {}),
    });
  }
  return layers;
}

/** Fan-in of a weight as PyTorch counts it: input channels times the kernel's area (Gemm and MatMul: the inner size). */
function fanIn(layer: ParameterLayer, dims: number[]): number {
  const op = layer.node.opType;
  if (op === 'Conv') return dims.slice(1).reduce((a, b) => a * b, 1);
  if (op === 'ConvTranspose') return (dims[1] as number) * dims.slice(2).reduce((a, b) => a * b, 1);
  if (op === 'Gemm') {
    const transB = (layer.node.attribute ?? []).find((a) => a.name === 'transB');
    return Number(transB?.i ?? 0) ? (dims[1] as number) : (dims[0] as number);
  }
  return dims[0] as number;
}

/**
 * The model with the weights of `layers` re-drawn by PyTorch's default initialisation, seeded: weights and biases
 * uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), the scheme torch.nn's Conv and Linear layers
 * start from, each layer from its own seeded stream. Every other tensor is kept. Returns the new model's bytes.
 */
export function randomiseLayers(bytes: Uint8Array, layerNames: readonly string[], seed = 0): Uint8Array {
  const graph = OnnxGraph.fromBytes(bytes);
  const layers = parameterLayers(graph);
  for (const name of layerNames) {
    const index = layers.findIndex((l) => l.name === name);
    const layer = layers[index];
    if (!layer) throw new CamerasError(`no layer with weights named '${name}'; the model's are: ${layers.map((l) => l.name).join(', ')}`);
    // One stream per layer: a layer gets the same random weights whichever other layers are randomised with it.
    const integers = mulberry32(Math.imul(seed + 1, 0x9e3779b1) ^ index);
    const next = () => integers() / 4294967296;
    const weight = graph.initializers.get(layer.weight);
    if (!weight) continue;
    const dims = tensorDims(weight);
    const bound = 1 / Math.sqrt(Math.max(1, fanIn(layer, dims)));
    const redraw = (name: string, shape: number[]) => {
      const count = shape.reduce((a, b) => a * b, 1);
      const values = Float32Array.from({ length: count }, () => (2 * next() - 1) * bound);
      const tensor = makeTensor(name, values, shape);
      const list = graph.graph.initializer ?? [];
      const at = list.findIndex((t) => t.name === name);
      if (at >= 0) list[at] = tensor;
      graph.initializers.set(name, tensor);
    };
    redraw(layer.weight, dims);
    if (layer.bias) redraw(layer.bias, tensorDims(graph.initializers.get(layer.bias) ?? weight));
  }
  return graph.toBytes();
}
