import { CamerasError } from '../errors.js';
import { type AttributeInput, OnnxGraph } from '../onnx/graph.js';
import { DataType } from '../onnx/proto.js';
import { halfToFloat, type StateDict } from './safetensors.js';

/** The parts of a TF.js layers-model JSON (`model.json`) we read. */
export interface TfjsModelJson {
  modelTopology: { model_config?: KerasModel; class_name?: string; config?: KerasModel['config'] };
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[];
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; min?: number; scale?: number };
}

interface KerasLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown> & { name: string };
  inbound_nodes?: unknown[];
}

interface KerasModel {
  class_name: string;
  config: { layers: KerasLayer[]; input_layers?: unknown[]; output_layers?: unknown[] } | KerasLayer[];
}

/** Decodes the weight shards of a manifest (concatenated in order), dequantising uint8/uint16/float16. */
export function decodeTfjsWeights(model: TfjsModelJson, shards: Uint8Array[]): StateDict {
  const total = shards.reduce((n, s) => n + s.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const shard of shards) {
    bytes.set(shard, at);
    at += shard.length;
  }
  const view = new DataView(bytes.buffer);
  const weights: StateDict = new Map();
  let offset = 0;
  for (const group of model.weightsManifest) {
    for (const spec of group.weights) {
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(count);
      const q = spec.quantization;
      const size = q ? (q.dtype === 'uint8' ? 1 : 2) : 4;
      if (offset + count * size > bytes.length)
        throw new CamerasError(`the weight shards end before ${spec.name}; the model files are incomplete`);
      for (let i = 0; i < count; i++) {
        const p = offset + i * size;
        if (!q) data[i] = spec.dtype === 'int32' ? view.getInt32(p, true) : view.getFloat32(p, true);
        else if (q.dtype === 'uint8') data[i] = (q.min ?? 0) + (q.scale ?? 1) * (bytes[p] as number);
        else if (q.dtype === 'uint16') data[i] = (q.min ?? 0) + (q.scale ?? 1) * view.getUint16(p, true);
        else data[i] = halfToFloat(view.getUint16(p, true));
      }
      offset += count * size;
      weights.set(spec.name, { shape: spec.shape, data });
    }
  }
  return weights;
}

const pair = (v: unknown, fallback: number): [number, number] =>
  Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : v === undefined || v === null ? [fallback, fallback] : [Number(v), Number(v)];

/** Static NCHW geometry at the model's native input size, used to recognise whole-map pooling. */
interface Tensor {
  name: string;
  /** [C, H, W] for images (held as NCHW), [features] for flat tensors. */
  shape: number[];
}

/** What a layer's converter works with: its config, inputs and the graph being built. */
interface LayerContext {
  g: OnnxGraph;
  /** The Keras layer's name, the scope of its ONNX nodes. */
  name: string;
  className: string;
  config: KerasLayer['config'];
  inbound: Tensor[];
  /** The first input (a layer with none fails by name). */
  input(): Tensor;
  /** The first input as an image, `[C, H, W]`. */
  image(): [number, number, number];
  weight(name: string): { shape: number[]; data: Float32Array };
  /** Whether the model's weights hold this one under the layer's exact name. */
  weightExists(name: string): boolean;
  node(op: string, inputs: string[], attrs?: Record<string, AttributeInput>): string;
  activation(x: string, name: unknown): string;
}

const windowOut = (size: number, k: number, s: number, d: number, padding: string) =>
  padding === 'same' ? Math.ceil(size / s) : Math.floor((size - (k - 1) * d - 1) / s) + 1;

/** Keras activation name -> ONNX nodes. */
function activation(ctx: Pick<LayerContext, 'g' | 'node' | 'name'>, x: string, name: unknown): string {
  const { g, node } = ctx;
  switch (name ?? 'linear') {
    case 'linear':
      return x;
    case 'relu':
      return node('Relu', [x]);
    case 'relu6':
      return node('Clip', [x, g.addConstant('lo', [0], []), g.addConstant('hi', [6], [])]);
    case 'sigmoid':
      return node('Sigmoid', [x]);
    case 'hard_sigmoid':
      return node('HardSigmoid', [x], { alpha: { float: 0.2 }, beta: { float: 0.5 } });
    case 'tanh':
      return node('Tanh', [x]);
    case 'softmax':
      return node('Softmax', [x], { axis: 1 });
    case 'swish':
    case 'silu':
      return node('Mul', [x, node('Sigmoid', [x])]);
    case 'elu':
      return node('Elu', [x]);
    default:
      throw new CamerasError(`the TF.js model uses activation '${String(name)}' in layer ${ctx.name}, which we cannot convert`);
  }
}

function inputLayer({ g, name, config: c }: LayerContext): Tensor {
  const shape = (c.batch_input_shape ?? c.batchInputShape) as (number | null)[];
  if (shape?.length !== 4) throw new CamerasError(`input layer ${name} is not an image input [batch, H, W, C]`);
  const [, h, w, ch] = shape as [null, number, number, number];
  g.addInput('input', DataType.FLOAT, ['batch', ch, 'height', 'width']);
  return { name: 'input', shape: [ch, h ?? 224, w ?? 224] };
}

function convolution(ctx: LayerContext): Tensor {
  const { g, name, config: c, node, weight } = ctx;
  const [cin, h, w] = ctx.image();
  const [kh, kw] = pair(c.kernel_size, 1);
  const [sh, sw] = pair(c.strides, 1);
  const [dh, dw] = pair(c.dilation_rate, 1);
  const padding = String(c.padding ?? 'valid');
  const common = {
    kernel_shape: [kh, kw],
    strides: [sh, sw],
    dilations: [dh, dw],
    auto_pad: padding === 'same' ? 'SAME_UPPER' : 'VALID',
  };
  let y = ctx.input().name;
  let channels: number;
  if (ctx.className === 'Conv2D') {
    const k = weight('kernel'); // [kh, kw, in/groups, out]
    const [, , inPerGroup, outChannels] = k.shape as [number, number, number, number];
    channels = outChannels;
    const wt = g.addConstant(`${name}/W`, transposeKernel(k.data, kh, kw, inPerGroup, outChannels), [outChannels, inPerGroup, kh, kw]);
    const bias = c.use_bias === false ? [] : [g.addConstant(`${name}/B`, weight('bias').data, [outChannels])];
    y = node('Conv', [y, wt, ...bias], { ...common, group: Number(c.groups ?? 1) });
  } else {
    const k = weight('depthwise_kernel'); // [kh, kw, in, multiplier]
    const multiplier = k.shape[3] as number;
    channels = cin * multiplier;
    const wt = g.addConstant(`${name}/W`, transposeKernel(k.data, kh, kw, 1, cin * multiplier), [cin * multiplier, 1, kh, kw]);
    const separable = ctx.className === 'SeparableConv2D';
    const bias = c.use_bias === false || separable ? [] : [g.addConstant(`${name}/B`, weight('bias').data, [channels])];
    y = node('Conv', [y, wt, ...bias], { ...common, group: cin });
    if (separable) {
      const p = weight('pointwise_kernel'); // [1, 1, in*multiplier, out]
      const outChannels = p.shape[3] as number;
      const pw = g.addConstant(`${name}/PW`, transposeKernel(p.data, 1, 1, channels, outChannels), [outChannels, channels, 1, 1]);
      const pbias = c.use_bias === false ? [] : [g.addConstant(`${name}/B`, weight('bias').data, [outChannels])];
      channels = outChannels;
      y = node('Conv', [y, pw, ...pbias], { kernel_shape: [1, 1] });
    }
  }
  return {
    name: ctx.activation(y, c.activation),
    shape: [channels, windowOut(h, kh, sh, dh, padding), windowOut(w, kw, sw, dw, padding)],
  };
}

function batchNormalization(ctx: LayerContext): Tensor {
  const { g, name, config: c, node, weight } = ctx;
  const t = ctx.input();
  const axis = Number(c.axis ?? -1);
  if (t.shape.length === 3 && axis !== -1 && axis !== 3)
    throw new CamerasError(`layer ${name}: BatchNormalization over axis ${axis} is not supported`);
  const channels = t.shape[0] as number;
  const ones = new Float32Array(channels).fill(1);
  const param = (p: string, fallback: Float32Array) =>
    g.addConstant(`${name}/${p}`, ctx.weightExists(p) || c[p === 'gamma' ? 'scale' : 'center'] !== false ? weight(p).data : fallback, [
      channels,
    ]);
  const gamma = c.scale === false ? g.addConstant(`${name}/gamma`, ones, [channels]) : param('gamma', ones);
  const beta =
    c.center === false ? g.addConstant(`${name}/beta`, new Float32Array(channels), [channels]) : param('beta', new Float32Array(channels));
  const mean = g.addConstant(`${name}/mean`, weight('moving_mean').data, [channels]);
  const variance = g.addConstant(`${name}/var`, weight('moving_variance').data, [channels]);
  let y = t.name;
  if (t.shape.length === 1) y = node('Unsqueeze', [y, g.addConstant('axes', [2, 3], [2], 'int64')]);
  y = node('BatchNormalization', [y, gamma, beta, mean, variance], { epsilon: { float: Number(c.epsilon ?? 1e-3) } });
  if (t.shape.length === 1) y = node('Flatten', [y], { axis: 1 });
  return { name: y, shape: t.shape };
}

function relu(ctx: LayerContext): Tensor {
  const { g, name, config: c, node } = ctx;
  const t = ctx.input();
  const max = c.max_value === null || c.max_value === undefined ? undefined : Number(c.max_value);
  const slope = Number(c.negative_slope ?? 0);
  if (Number(c.threshold ?? 0) !== 0) throw new CamerasError(`layer ${name}: ReLU with a threshold is not supported`);
  let y = slope !== 0 ? node('LeakyRelu', [t.name], { alpha: { float: slope } }) : undefined;
  if (max !== undefined) {
    y = y
      ? node('Min', [y, g.addConstant('max', [max], [])])
      : node('Clip', [t.name, g.addConstant('lo', [0], []), g.addConstant('hi', [max], [])]);
  }
  return { name: y ?? node('Relu', [t.name]), shape: t.shape };
}

function zeroPadding(ctx: LayerContext): Tensor {
  const [ch, h, w] = ctx.image();
  const p = ctx.config.padding;
  const [[top, bottom], [left, right]] = Array.isArray(p) ? (p as unknown[]).map((q) => pair(q, 0)) : [pair(p, 0), pair(p, 0)];
  const pads = ctx.g.addConstant(`${ctx.name}/pads`, [0, 0, top, left, 0, 0, bottom, right], [8], 'int64');
  return { name: ctx.node('Pad', [ctx.input().name, pads]), shape: [ch, h + top + bottom, w + left + right] };
}

function pooling(ctx: LayerContext): Tensor {
  const { config: c, node } = ctx;
  const [ch, h, w] = ctx.image();
  const [kh, kw] = pair(c.pool_size, 2);
  const [sh, sw] = pair(c.strides ?? c.pool_size, 2);
  const padding = String(c.padding ?? 'valid');
  const whole = ctx.className === 'AveragePooling2D' && padding === 'valid' && kh === h && kw === w;
  if (whole) return { name: node('GlobalAveragePool', [ctx.input().name]), shape: [ch, 1, 1] };
  const op = ctx.className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool';
  const attrs: Record<string, AttributeInput> = {
    kernel_shape: [kh, kw],
    strides: [sh, sw],
    auto_pad: padding === 'same' ? 'SAME_UPPER' : 'VALID',
  };
  if (op === 'AveragePool') attrs.count_include_pad = 0;
  return { name: node(op, [ctx.input().name], attrs), shape: [ch, windowOut(h, kh, sh, 1, padding), windowOut(w, kw, sw, 1, padding)] };
}

function globalPooling(ctx: LayerContext): Tensor {
  const [ch] = ctx.image();
  const op = ctx.className === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool';
  const pooled = ctx.node(op, [ctx.input().name]);
  return ctx.config.keepdims ? { name: pooled, shape: [ch, 1, 1] } : { name: ctx.node('Flatten', [pooled], { axis: 1 }), shape: [ch] };
}

function flatten(ctx: LayerContext): Tensor {
  const t = ctx.input();
  if (t.shape.length === 1) return t;
  // Keras flattens NHWC: an image (held as NCHW) moves its channels last first.
  const ordered = t.shape.length === 3 ? ctx.node('Transpose', [t.name], { perm: [0, 2, 3, 1] }) : t.name;
  return { name: ctx.node('Flatten', [ordered], { axis: 1 }), shape: [t.shape.reduce((a, b) => a * b, 1)] };
}

function dense(ctx: LayerContext): Tensor {
  const { g, name, config: c } = ctx;
  const t = ctx.input();
  if (t.shape.length !== 1)
    throw new CamerasError(`layer ${name}: Dense on a ${t.shape.length + 1}-D tensor is not supported; flatten first`);
  const k = ctx.weight('kernel'); // [in, out]
  const units = k.shape[1] as number;
  const inputs = [t.name, g.addConstant(`${name}/W`, k.data, k.shape)];
  if (c.use_bias !== false) inputs.push(g.addConstant(`${name}/B`, ctx.weight('bias').data, [units]));
  return { name: ctx.activation(ctx.node('Gemm', inputs), c.activation), shape: [units] };
}

function elementwiseMerge(ctx: LayerContext): Tensor {
  const op = ctx.className === 'Add' ? 'Add' : 'Mul';
  let y = ctx.input().name;
  for (const other of ctx.inbound.slice(1)) y = ctx.node(op, [y, other.name]);
  return { name: y, shape: ctx.input().shape };
}

function concatenate(ctx: LayerContext): Tensor {
  const axis = Number(ctx.config.axis ?? -1);
  const rank = ctx.input().shape.length + 1;
  const normalised = axis < 0 ? axis + rank : axis;
  // NHWC axis -> NCHW axis: channels (3) -> 1, rows (1) -> 2, columns (2) -> 3.
  const onnxAxis = rank === 4 ? ([0, 2, 3, 1][normalised] as number) : normalised;
  const shape = [...ctx.input().shape];
  const dim = rank === 4 ? [undefined, 1, 2, 0][normalised] : normalised - 1;
  if (dim !== undefined) shape[dim] = ctx.inbound.reduce((n, t) => n + (t.shape[dim] as number), 0);
  return {
    name: ctx.node(
      'Concat',
      ctx.inbound.map((t) => t.name),
      { axis: onnxAxis },
    ),
    shape,
  };
}

function reshape(ctx: LayerContext): Tensor {
  const t = ctx.input();
  const target = (ctx.config.target_shape as number[]).map(Number);
  const source = t.shape.length === 3 ? ctx.node('Transpose', [t.name], { perm: [0, 2, 3, 1] }) : t.name;
  let y = ctx.node('Reshape', [source, ctx.g.addConstant(`${ctx.name}/shape`, [0, ...target], [target.length + 1], 'int64')]);
  if (target.length === 3) y = ctx.node('Transpose', [y], { perm: [0, 3, 1, 2] });
  const known = target.length === 3 ? [target[2] as number, target[0] as number, target[1] as number] : target;
  return { name: y, shape: known };
}

/** Identity at inference: dropout and noise layers. */
const passThrough = (ctx: LayerContext): Tensor => ctx.input();

/** Every Keras layer class we convert, and how; a model with any other class is refused with this table's keys. */
export const TFJS_LAYERS: Readonly<Record<string, (ctx: LayerContext) => Tensor>> = {
  InputLayer: inputLayer,
  Conv2D: convolution,
  DepthwiseConv2D: convolution,
  SeparableConv2D: convolution,
  BatchNormalization: batchNormalization,
  ReLU: relu,
  Activation: (ctx) => ({ name: ctx.activation(ctx.input().name, ctx.config.activation), shape: ctx.input().shape }),
  Softmax: (ctx) => ({ name: ctx.activation(ctx.input().name, 'softmax'), shape: ctx.input().shape }),
  ZeroPadding2D: zeroPadding,
  MaxPooling2D: pooling,
  AveragePooling2D: pooling,
  GlobalAveragePooling2D: globalPooling,
  GlobalMaxPooling2D: globalPooling,
  Flatten: flatten,
  Dense: dense,
  Dropout: passThrough,
  SpatialDropout2D: passThrough,
  GaussianNoise: passThrough,
  GaussianDropout: passThrough,
  AlphaDropout: passThrough,
  Add: elementwiseMerge,
  Multiply: elementwiseMerge,
  Concatenate: concatenate,
  Reshape: reshape,
};

/**
 * Converts a TF.js layers model (Keras functional or sequential) to ONNX: NCHW inside, Keras semantics
 * kept (TF 'same' padding as SAME_UPPER, average pooling without padded counts, flatten in NHWC order).
 * Node names carry the Keras layer name as scope (`/out_relu/Relu`), so `--layer out_relu` works.
 * An AveragePooling2D whose window covers the whole feature map at the native input size becomes
 * global average pooling: identical there, and the model then accepts the larger inputs multi-scale
 * methods feed it. A layer we cannot convert fails with its class and name.
 */
export function convertTfjsModel(model: TfjsModelJson, weights: StateDict): Uint8Array {
  const keras = model.modelTopology.model_config ?? (model.modelTopology as KerasModel);
  const layers = Array.isArray(keras.config) ? keras.config : keras.config.layers;
  const sequential = keras.class_name === 'Sequential';
  const g = OnnxGraph.empty('tfjs');
  const tensors = new Map<string, Tensor>();
  let last: Tensor | undefined;
  const find = (layer: string, name: string) =>
    weights.get(`${layer}/${name}`) ?? [...weights.entries()].find(([k]) => k.endsWith(`${layer}/${name}`))?.[1];

  for (const [index, layer] of layers.entries()) {
    const name = layer.config.name ?? layer.name ?? `layer_${index}`;
    const convert = TFJS_LAYERS[layer.class_name];
    if (!convert)
      throw new CamerasError(
        `the TF.js model has a layer we cannot convert: ${layer.class_name} '${name}'; supported: ${Object.keys(TFJS_LAYERS).join(', ')}`,
      );
    const inbound = sequential ? (last ? [last] : []) : inputsOf(layer, tensors);
    const node = (op: string, inputs: string[], attrs: Record<string, AttributeInput> = {}) =>
      g.addNode(op, inputs, attrs, { name: `/${name}/${op}` })[0] as string;
    const ctx: LayerContext = {
      g,
      name,
      className: layer.class_name,
      config: layer.config,
      inbound,
      input: () => {
        if (!inbound[0]) throw new CamerasError(`layer ${name} (${layer.class_name}) has no input`);
        return inbound[0];
      },
      image: () => {
        const t = ctx.input();
        if (t.shape.length !== 3)
          throw new CamerasError(`layer ${name} (${layer.class_name}) needs an image tensor, got shape [${t.shape}]`);
        return t.shape as [number, number, number];
      },
      weight: (weightName) => {
        const found = find(name, weightName);
        if (!found) throw new CamerasError(`the TF.js model has no weight ${name}/${weightName}; the weight files do not match model.json`);
        return found;
      },
      weightExists: (weightName) => weights.has(`${name}/${weightName}`),
      node,
      activation: (x, kind) => activation({ g, node, name }, x, kind),
    };
    const out = convert(ctx);
    tensors.set(name, out);
    last = out;
  }
  const outputName = sequential ? last?.name : outputsOf(keras, tensors)[0]?.name;
  if (!outputName) throw new CamerasError('the TF.js model has no output layer');
  const output = g.addNode('Identity', [outputName], {}, { outputs: ['output'], name: '/output/Identity' })[0] as string;
  g.addOutput(output, DataType.FLOAT, ['batch', (last?.shape[0] ?? 0) as number]);
  return g.toBytes();
}

/** Keras [kh, kw, in, out] -> ONNX [out, in, kh, kw]. */
function transposeKernel(data: Float32Array, kh: number, kw: number, inputs: number, outputs: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < inputs; i++)
        for (let o = 0; o < outputs; o++)
          out[((o * inputs + i) * kh + y) * kw + x] = data[((y * kw + x) * inputs + i) * outputs + o] as number;
  return out;
}

function inputsOf(layer: KerasLayer, tensors: Map<string, Tensor>): Tensor[] {
  const nodes = layer.inbound_nodes ?? [];
  if (nodes.length === 0) return [];
  if (nodes.length > 1)
    throw new CamerasError(`layer ${layer.config.name} is shared (called ${nodes.length} times), which is not supported`);
  const first = nodes[0] as unknown[] | { args?: unknown };
  const entries = Array.isArray(first) ? (first as unknown[][]) : [];
  return entries.map((entry) => {
    const source = String(entry[0]);
    const found = tensors.get(source);
    if (!found) throw new CamerasError(`layer ${layer.config.name} reads ${source}, which comes later or does not exist`);
    return found;
  });
}

function outputsOf(keras: KerasModel, tensors: Map<string, Tensor>): Tensor[] {
  const config = keras.config as { output_layers?: unknown[][] };
  return (config.output_layers ?? []).map((entry) => tensors.get(String(entry[0]))).filter((t): t is Tensor => !!t);
}
