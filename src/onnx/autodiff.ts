import { CamerasError, ExitCode } from '../errors.js';
import { OnnxGraph } from './graph.js';
import { raiseOpset } from './opset.js';
import { type PositionResample, resamplePositionEmbeddings } from './position-embedding.js';
import { DataType, type ModelProto, type NodeProto } from './proto.js';
import { inferRanks } from './ranks.js';
import { inferShapes } from './shapes.js';
import { VjpContext, vjpRules } from './vjp/index.js';

/** The opset gradient graphs are written in: 16 brings ScatterElements with reduction. */
export const GRADIENT_OPSET = 16;

export interface GradientGraphOptions {
  /** Tensors whose gradients are wanted (activations of target layers, or the model input). */
  targets: string[];
  /** How a ViT's position embedding is resampled to other input sizes (default torchvision's). */
  positionResample?: PositionResample;
  /** The output to differentiate; default: the model's first output. A trailing (Log)Softmax is stripped either way. */
  output?: string;
  /**
   * The seed is a graph input of the output's rank (any shape that broadcasts to the output's), the vector of the
   * vector-Jacobian product. With `seedInputs`, more inputs shape it without a second pass:
   * - a classifier's `[batch, classes]` logits take three `[batch, 1]` inputs (see `GradientGraph.topOne`,
   *   `.softmax` and `.logSoftmax`): the seed of the logits becomes `s = seed + topOne * onehot(argmax logits)`; where
   *   `softmax` is 1, `s` weights the probabilities p = softmax(logits) instead, so the logits receive
   *   `p * (s - sum(s * p))`; where `logSoftmax` is 1, `s` weights the log-probabilities, so the logits receive
   *   `s - p * sum(s)`;
   * - a dense `[batch, K, H, W]` output (a segmenter's) takes a region (see `GradientGraph.region`): class weights
   *   `w [batch, K]`, a mask `m [batch, 1, h, w]` of any size, resized to `H x W` (nearest, as PyTorch's default
   *   `interpolate`), and a flag `[batch, 1]`; the seed becomes `seed + w (x) mask`, the mask being the pixels whose
   *   argmax over K is the class `w` weights where the flag is 1, else `m` resized.
   */
  seedInputs?: boolean;
  /**
   * Default true: MaxPool back-propagates through its Indices output; false: through comparisons with the
   * pooled output, for runtimes whose MaxPool has no Indices output such as onnxruntime-web's WebGPU kernels.
   */
  maxPoolIndices?: boolean;
}

export interface GradientGraph {
  bytes: Uint8Array;
  /** Name of the model's image input. */
  input: string;
  /** The differentiated output (logits, or any output), an output of the new graph. */
  output: string;
  /** Its rank (2 for a classifier's logits, 4 for a segmenter's scores). */
  outputRank: number;
  /** The seed graph input, float32 of the output's rank, broadcast to its shape. */
  seed: string;
  /** With `seedInputs` on a classifier: `[batch, 1]` weight of the top-1 class's one-hot added to the seed. */
  topOne?: string;
  /** With `seedInputs` on a classifier: `[batch, 1]`, 1 where the seed weights the softmax probabilities instead of the logits. */
  softmax?: string;
  /** With `seedInputs` on a classifier: `[batch, 1]`, 1 where the seed weights the log-probabilities (cross-entropy's gradient). */
  logSoftmax?: string;
  /** With `seedInputs` on a dense `[batch, K, H, W]` output: the region's class weights, mask and predicted-mask flag. */
  region?: { classWeights: string; mask: string; predicted: string };
  /** The input's height and width when the model was exported for one size (freed here; see `relaxInputShape`). */
  exportedSize?: [number, number];
  /** For each target: the activation output (undefined for a graph input) and its gradient output. */
  targets: { name: string; activation: string | undefined; gradient: string }[];
}

/** The output that holds logits: the named one, or the first, walking back over a trailing (Log)Softmax. */
export function logitsOf(graph: OnnxGraph, output?: string): string {
  let name = output ?? graph.outputNames[0];
  if (!name) throw new CamerasError('the model has no outputs; export it again');
  for (;;) {
    const made = graph.producers.get(name);
    if (!made || !['Softmax', 'LogSoftmax', 'Identity'].includes(made.node.opType ?? '')) return name;
    name = made.node.input?.[0] as string;
  }
}

/** Ops whose outputs carry no gradient: shapes, indices, booleans. */
const NON_DIFFERENTIABLE = new Set([
  'Shape',
  'Size',
  'NonZero',
  'ArgMax',
  'ArgMin',
  'Equal',
  'Greater',
  'GreaterOrEqual',
  'Less',
  'LessOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
  'Sign',
  'Floor',
  'Ceil',
  'Round',
  'EyeLike',
  'ConstantOfShape',
]);

const FLOAT_TYPES = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);

function carriesGradient(node: NodeProto): boolean {
  if (NON_DIFFERENTIABLE.has(node.opType ?? '')) return false;
  if (node.opType === 'Cast') {
    const to = (node.attribute ?? []).find((a) => a.name === 'to');
    return FLOAT_TYPES.has(Number(to?.i ?? 0));
  }
  return true;
}

/** Tensors whose values depend differentiably on any of `sources`. */
function dependents(graph: OnnxGraph, sources: string[]): Set<string> {
  const reached = new Set(sources);
  for (const node of graph.nodes) {
    if (!carriesGradient(node)) continue;
    if ((node.input ?? []).some((name) => reached.has(name))) for (const out of node.output ?? []) if (out) reached.add(out);
  }
  return reached;
}

/**
 * Declares the input's batch, height and width dynamic, so images can be stacked and taken at every scale. An
 * export without dynamic axes (torch.onnx.export's default) fixes them: they are freed, and the intermediate
 * shapes recorded for that size are forgotten (ranks kept), so ONNX Runtime infers them anew. Returns the
 * exported height and width when they were fixed. A model whose graph bakes a size in (a Reshape to a fixed
 * shape) still runs at that size and fails at others, where the session names the node.
 */
function relaxInputShape(graph: OnnxGraph, input: string): [number, number] | undefined {
  let fixed: [number, number] | undefined;
  for (const value of [...(graph.graph.input ?? []), ...(graph.graph.output ?? [])]) {
    if (value.name !== input && !graph.outputNames.includes(value.name ?? '')) continue;
    const dims = value.type?.tensorType?.shape?.dim ?? [];
    const free = (slot: number, name: string) => {
      const dim = dims[slot];
      if (!dim) return;
      dim.dimValue = null;
      dim.dimParam = name;
    };
    free(0, 'batch');
    if (value.name === input && dims.length === 4) {
      const [h, w] = [Number(dims[2]?.dimValue ?? 0), Number(dims[3]?.dimValue ?? 0)];
      if (h > 0 && w > 0) fixed = [h, w];
      free(2, 'height');
      free(3, 'width');
    }
  }
  if (fixed) {
    for (const value of graph.graph.valueInfo ?? []) {
      for (const dim of value.type?.tensorType?.shape?.dim ?? []) {
        dim.dimValue = null;
        dim.dimParam = null;
      }
    }
  }
  return fixed;
}

/** Tensors that `sink` depends on. */
function ancestors(graph: OnnxGraph, sink: string): Set<string> {
  const reached = new Set([sink]);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i] as NodeProto;
    if ((node.output ?? []).some((name) => reached.has(name))) for (const input of node.input ?? []) if (input) reached.add(input);
  }
  return reached;
}

/**
 * Appends the backward pass to a model: from `seed . output` back to each target, only along the
 * nodes between them. The model is not changed; a new one is returned as bytes for ONNX Runtime.
 */
export function buildGradientGraph(model: ModelProto | Uint8Array, options: GradientGraphOptions): GradientGraph {
  const bytes = model instanceof Uint8Array ? model : new OnnxGraph(model).toBytes();
  const graph = OnnxGraph.fromBytes(bytes);
  raiseOpset(graph, GRADIENT_OPSET);
  const input = graph.inputNames[0];
  if (!input) throw new CamerasError('the model has no input; export it again');
  const exportedSize = relaxInputShape(graph, input);
  // A ViT's learnt position embedding follows the input's patch grid, so it runs at every scale.
  resamplePositionEmbeddings(graph, options.positionResample);
  const logits = logitsOf(graph, options.output);
  for (const target of options.targets) {
    if (!graph.producers.has(target) && !graph.inputNames.includes(target)) {
      throw new CamerasError(`tensor '${target}' is not in the model; list valid layers with 'cameras layers --model <model>'`);
    }
  }

  const onPath = dependents(graph, options.targets);
  const feeding = ancestors(graph, logits);
  const pathTensors = new Set([...onPath].filter((name) => feeding.has(name)));
  for (const target of options.targets) {
    if (!pathTensors.has(target)) {
      throw new CamerasError(`tensor '${target}' does not influence the output '${logits}'; choose a layer before the classifier head`);
    }
  }
  const ranks = inferRanks(graph);
  const ctx = new VjpContext(graph, ranks, inferShapes(graph), options);

  // Seed: an input of the output's rank, shaped further by the seed inputs (top-1 class, softmax; or a region).
  const seed = graph.freshName('cameras_seed');
  const outputRank = ranks.get(logits) ?? 2;
  graph.addInput(
    seed,
    DataType.FLOAT,
    Array.from({ length: outputRank }, (_, i) => `cameras_seed_${i}`),
  );
  let seedUsed = seed;
  let topOne: string | undefined;
  let softmax: string | undefined;
  let logSoftmax: string | undefined;
  let region: GradientGraph['region'];
  if (options.seedInputs && outputRank === 2) {
    topOne = graph.freshName('cameras_top_one');
    softmax = graph.freshName('cameras_softmax');
    graph.addInput(topOne, DataType.FLOAT, ['cameras_seed_0', 1]);
    logSoftmax = graph.freshName('cameras_log_softmax');
    graph.addInput(softmax, DataType.FLOAT, ['cameras_seed_0', 1]);
    graph.addInput(logSoftmax, DataType.FLOAT, ['cameras_seed_0', 1]);
    const top = ctx.op('ArgMax', [logits], { axis: -1, keepdims: 0 });
    const oneHot = ctx.op('OneHot', [top, ctx.dims(logits, 1, 2), ctx.floatTensor([0, 1], [2])], { axis: -1 });
    const onLogits = ctx.op('Add', [seedUsed, ctx.op('Mul', [topOne, oneHot])]);
    // The softmax's vector-Jacobian product: p * (s - sum(s * p)).
    const p = ctx.op('Softmax', [logits], { axis: -1 });
    const centred = ctx.op('Sub', [onLogits, ctx.op('ReduceSum', [ctx.op('Mul', [onLogits, p]), ctx.int64([-1])], { keepdims: 1 })]);
    const onProbabilities = ctx.op('Mul', [p, centred]);
    // The log-softmax's: s - p * sum(s).
    const onLogProbabilities = ctx.op('Sub', [
      onLogits,
      ctx.op('Mul', [p, ctx.op('ReduceSum', [onLogits, ctx.int64([-1])], { keepdims: 1 })]),
    ]);
    seedUsed = ctx.op('Add', [
      onLogits,
      ctx.op('Add', [
        ctx.op('Mul', [softmax, ctx.op('Sub', [onProbabilities, onLogits])]),
        ctx.op('Mul', [logSoftmax, ctx.op('Sub', [onLogProbabilities, onLogits])]),
      ]),
    ]);
  } else if (options.seedInputs && outputRank === 4) {
    region = {
      classWeights: graph.freshName('cameras_region_class'),
      mask: graph.freshName('cameras_region_mask'),
      predicted: graph.freshName('cameras_region_predicted'),
    };
    graph.addInput(region.classWeights, DataType.FLOAT, ['cameras_region_batch', 'cameras_region_classes']);
    graph.addInput(region.mask, DataType.FLOAT, ['cameras_region_batch', 1, 'cameras_mask_height', 'cameras_mask_width']);
    graph.addInput(region.predicted, DataType.FLOAT, ['cameras_region_batch', 1]);
    const spatial = ctx.int64([2, 3]);
    const weights = ctx.op('Unsqueeze', [region.classWeights, spatial]);
    const flag = ctx.op('Unsqueeze', [region.predicted, spatial]);
    // The pixels predicted as the weighted class: argmax over K equal to the class's index.
    const predictedClass = ctx.op('Unsqueeze', [ctx.op('ArgMax', [region.classWeights], { axis: 1, keepdims: 0 }), ctx.int64([1, 2, 3])]);
    const predictedMask = ctx.op('Cast', [ctx.op('Equal', [ctx.op('ArgMax', [logits], { axis: 1, keepdims: 1 }), predictedClass])], {
      to: DataType.FLOAT,
    });
    // A given mask, resized to the output's size as PyTorch's default (nearest, floor of the asymmetric position).
    const sizes = ctx.op('Concat', [ctx.dims(region.mask, 0, 2), ctx.dims(logits, 2, 4)], { axis: 0 });
    const givenMask = ctx.op('Resize', [region.mask, '', '', sizes], {
      mode: 'nearest',
      coordinate_transformation_mode: 'asymmetric',
      nearest_mode: 'floor',
    });
    const mask = ctx.op('Add', [
      ctx.op('Mul', [flag, predictedMask]),
      ctx.op('Mul', [ctx.op('Sub', [ctx.floatTensor([1], []), flag]), givenMask]),
    ]);
    // Expanded to the output's shape: a pass that only learns the class count feeds one class, which broadcasts.
    seedUsed = ctx.op('Expand', [ctx.op('Add', [seed, ctx.op('Mul', [weights, mask])]), ctx.shape(logits)]);
  }

  // A seed fed in a broadcast shape (the all-ones shape of a forward-only pass) is expanded to the output's: rules
  // take the output's gradient in the output's own shape.
  if (seedUsed === seed) seedUsed = ctx.op('Expand', [seed, ctx.shape(logits)]);
  const contributions = new Map<string, string[]>([[logits, [seedUsed]]]);
  const gradientOf = (name: string): string | undefined => {
    const parts = contributions.get(name);
    if (!parts || parts.length === 0) return undefined;
    if (parts.length === 1) return parts[0];
    const total = parts.length === 2 ? ctx.op('Add', parts) : ctx.op('Sum', parts);
    contributions.set(name, [total]);
    return total;
  };

  const forwardNodes = [...graph.nodes];
  for (let i = forwardNodes.length - 1; i >= 0; i--) {
    const node = forwardNodes[i] as NodeProto;
    const outputs = node.output ?? [];
    if (!outputs.some((name) => pathTensors.has(name))) continue;
    const inputs = node.input ?? [];
    // Only tensors downstream of a target get gradients: nothing before the targets is computed.
    const wanted = inputs.map((name) => pathTensors.has(name));
    if (!wanted.some(Boolean)) continue;
    const outputGradients = outputs.map((name) => (pathTensors.has(name) ? gradientOf(name) : undefined));
    if (outputGradients.every((g) => g === undefined)) continue;
    if (node.domain && node.domain !== 'ai.onnx') {
      throw new CamerasError(
        `cannot differentiate ${node.domain}::${node.opType} node '${node.name}': custom-domain ops have no gradient rule; choose a target layer after it`,
        ExitCode.unsupportedModel,
      );
    }
    const rule = vjpRules[node.opType ?? ''];
    if (!rule) {
      throw new CamerasError(
        `cannot differentiate ${node.opType} node '${node.name}': no gradient rule for ${node.opType}; choose a target layer after it or re-export the model without it`,
        ExitCode.unsupportedModel,
      );
    }
    const inputGradients = rule(ctx, node, outputGradients, wanted);
    inputs.forEach((name, slot) => {
      const grad = inputGradients[slot];
      if (!grad || !wanted[slot]) return;
      const list = contributions.get(name);
      if (list) list.push(grad);
      else contributions.set(name, [grad]);
    });
  }

  graph.addOutput(logits);
  const result: GradientGraph['targets'] = [];
  for (const target of options.targets) {
    const gradient = gradientOf(target) ?? ctx.zerosLike(target);
    const gradientName = graph.freshName(`cameras_grad:${target}`);
    graph.addNode('Identity', [gradient], {}, { outputs: [gradientName], name: 'cameras_grad/output' });
    graph.addOutput(gradientName);
    const isInput = graph.inputNames.includes(target);
    // The logits as a target (a forward pass with a trivial backward) are already an output.
    if (!isInput && target !== logits) graph.addOutput(target);
    result.push({ name: target, activation: isInput ? undefined : target, gradient: gradientName });
  }
  if (ctx.requiredOpset > graph.opset) graph.opset = ctx.requiredOpset;
  return {
    bytes: graph.toBytes(),
    input,
    output: logits,
    outputRank,
    seed,
    ...(topOne ? { topOne, softmax, logSoftmax } : {}),
    ...(region ? { region } : {}),
    ...(exportedSize ? { exportedSize } : {}),
    targets: result,
  };
}
