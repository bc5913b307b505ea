import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { type AttributeInput, OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';

/** A seeded generator, so every run checks the same numbers. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface Input {
  name: string;
  shape: number[];
  /** How values are drawn: away from the kinks of piecewise ops, distinct for max pooling, positive for sqrt. */
  kind?: 'normal' | 'awayFromZero' | 'distinct' | 'positive' | 'awayFromClip';
}

interface Case {
  name: string;
  inputs: Input[];
  /** Adds the nodes; returns the output tensor name. */
  build: (g: OnnxGraph, inputs: string[]) => string;
  /** Linear ops are checked with a unit step (exact up to rounding); others with a small one. */
  linear?: boolean;
  /** The model's opset where the op is newer than 16 (Gelu: 20). */
  opset?: number;
}

function draw(input: Input, next: () => number): Float32Array {
  const count = input.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = next() * 2 - 1;
    switch (input.kind ?? 'normal') {
      case 'awayFromZero':
        values[i] = Math.sign(u || 1) * (0.1 + Math.abs(u) * 2.9);
        break;
      case 'positive':
        values[i] = 0.5 + next() * 2;
        break;
      case 'awayFromClip': {
        // Clip bounds in the cases are -0.5 and 0.7: stay 0.05 clear of both.
        const candidates = [-1.2 + next() * 0.6, -0.45 + next() * 1.1, 0.75 + next() * 0.6];
        values[i] = candidates[Math.floor(next() * 3)] as number;
        break;
      }
      default:
        values[i] = u * 2;
    }
  }
  if (input.kind === 'distinct') {
    // A shuffled ramp with steps of 0.01: a perturbation of 1e-3 never changes an argmax.
    const order = Array.from({ length: count }, (_, i) => i).sort(() => next() - 0.5);
    order.forEach((rank, i) => {
      values[i] = (rank - count / 2) * 0.01;
    });
  }
  return values;
}

function makeModel(c: Case): Uint8Array {
  const g = OnnxGraph.empty(c.name, c.opset);
  for (const input of c.inputs) g.addInput(input.name, DataType.FLOAT, input.shape);
  const output = c.build(
    g,
    c.inputs.map((i) => i.name),
  );
  g.addOutput(output);
  return g.toBytes();
}

const conv =
  (attrs: Record<string, AttributeInput>, weightShape: number[]) =>
  (g: OnnxGraph, [x]: string[]) => {
    const next = random(7);
    const count = weightShape.reduce((a, b) => a * b, 1);
    const w = g.addConstant(
      'w',
      Float32Array.from({ length: count }, () => next() - 0.5),
      weightShape,
    );
    return g.addNode('Conv', [x as string, w], attrs)[0] as string;
  };

const unary =
  (op: string, attrs: Record<string, AttributeInput> = {}) =>
  (g: OnnxGraph, [x]: string[]) =>
    g.addNode(op, [x as string], attrs)[0] as string;

const binary =
  (op: string) =>
  (g: OnnxGraph, [a, b]: string[]) =>
    g.addNode(op, [a as string, b as string])[0] as string;

const int64 = (g: OnnxGraph, values: number[]) => g.addConstant('c', values, [values.length], 'int64');

const cases: Case[] = [
  {
    name: 'Conv stride 2, pads 1, odd size',
    inputs: [{ name: 'x', shape: [1, 2, 9, 9] }],
    linear: true,
    build: conv({ strides: [2, 2], pads: [1, 1, 1, 1], kernel_shape: [3, 3] }, [3, 2, 3, 3]),
  },
  {
    name: 'Conv dilation 2, groups 2, asymmetric pads',
    inputs: [{ name: 'x', shape: [1, 4, 8, 7] }],
    linear: true,
    build: conv({ dilations: [2, 2], group: 2, pads: [2, 1, 0, 2], kernel_shape: [3, 3] }, [4, 2, 3, 3]),
  },
  {
    name: 'Conv depthwise stride 2',
    inputs: [{ name: 'x', shape: [1, 3, 10, 10] }],
    linear: true,
    build: conv({ strides: [2, 2], group: 3, pads: [1, 1, 1, 1] }, [3, 1, 3, 3]),
  },
  {
    name: 'Conv auto_pad SAME_UPPER stride 2',
    inputs: [{ name: 'x', shape: [1, 2, 9, 8] }],
    linear: true,
    build: conv({ strides: [2, 2], auto_pad: 'SAME_UPPER' }, [2, 2, 3, 3]),
  },
  {
    name: 'Conv auto_pad SAME_LOWER stride 1',
    inputs: [{ name: 'x', shape: [1, 2, 6, 6] }],
    linear: true,
    build: conv({ auto_pad: 'SAME_LOWER' }, [2, 2, 4, 4]),
  },
  {
    name: 'ConvTranspose stride 2, pads, output_padding',
    inputs: [{ name: 'x', shape: [1, 3, 5, 5] }],
    linear: true,
    build: (g, [x]) => {
      const next = random(3);
      const w = g.addConstant(
        'w',
        Float32Array.from({ length: 3 * 2 * 9 }, () => next() - 0.5),
        [3, 2, 3, 3],
      );
      return g.addNode('ConvTranspose', [x as string, w], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] })[0] as string;
    },
  },
  {
    name: 'MaxPool 3x3 stride 2 (overlapping windows)',
    inputs: [{ name: 'x', shape: [2, 2, 9, 9], kind: 'distinct' }],
    build: unary('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    name: 'MaxPool ceil_mode',
    inputs: [{ name: 'x', shape: [1, 2, 8, 8], kind: 'distinct' }],
    build: unary('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }),
  },
  {
    name: 'AveragePool count_include_pad=0',
    inputs: [{ name: 'x', shape: [1, 2, 7, 7] }],
    linear: true,
    build: unary('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    name: 'AveragePool count_include_pad=1',
    inputs: [{ name: 'x', shape: [1, 2, 7, 7] }],
    linear: true,
    build: unary('AveragePool', { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 1 }),
  },
  {
    name: 'AveragePool 2x2 stride 2',
    inputs: [{ name: 'x', shape: [1, 3, 8, 6] }],
    linear: true,
    build: unary('AveragePool', { kernel_shape: [2, 2], strides: [2, 2] }),
  },
  ...(
    [
      [
        'Resize linear half_pixel by sizes (upsample, as F.interpolate bilinear)',
        { mode: 'linear', coordinate_transformation_mode: 'half_pixel' },
        [1, 2, 5, 4],
        { sizes: [1, 2, 11, 9] },
      ],
      [
        'Resize linear pytorch_half_pixel to one pixel and back',
        { mode: 'linear', coordinate_transformation_mode: 'pytorch_half_pixel' },
        [1, 2, 1, 1],
        { sizes: [1, 2, 6, 7] },
      ],
      [
        'Resize linear align_corners by sizes (downsample)',
        { mode: 'linear', coordinate_transformation_mode: 'align_corners' },
        [2, 2, 9, 8],
        { sizes: [2, 2, 4, 5] },
      ],
      [
        'Resize nearest asymmetric floor by scales',
        { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
        [1, 3, 4, 5],
        { scales: [1, 1, 2, 1.5] },
      ],
      [
        'Resize cubic half_pixel by scales',
        { mode: 'cubic', coordinate_transformation_mode: 'half_pixel', cubic_coeff_a: { float: -0.75 } },
        [1, 1, 6, 5],
        { scales: [1, 1, 1.5, 2] },
      ],
    ] as [string, Record<string, AttributeInput>, number[], { sizes?: number[]; scales?: number[] }][]
  ).map(
    ([name, attributes, shape, by]): Case => ({
      name,
      inputs: [{ name: 'x', shape }],
      linear: true,
      build: (g, [x]) => {
        const scales = by.scales ? g.addConstant('scales', by.scales, [4]) : '';
        const sizes = by.sizes ? g.addConstant('sizes', by.sizes, [4], 'int64') : '';
        return g.addNode('Resize', [x as string, '', scales, sizes], attributes)[0] as string;
      },
    }),
  ),
  { name: 'GlobalAveragePool', inputs: [{ name: 'x', shape: [2, 3, 5, 4] }], linear: true, build: unary('GlobalAveragePool') },
  {
    name: 'BatchNormalization (inference)',
    inputs: [{ name: 'x', shape: [2, 3, 4, 4] }],
    linear: true,
    build: (g, [x]) => {
      const scale = g.addConstant('s', [0.5, 1.5, -2], [3]);
      const bias = g.addConstant('b', [0.1, -0.2, 0.3], [3]);
      const mean = g.addConstant('m', [0.2, -0.1, 0], [3]);
      const variance = g.addConstant('v', [1, 0.25, 4], [3]);
      return g.addNode('BatchNormalization', [x as string, scale, bias, mean, variance], { epsilon: { float: 1e-3 } })[0] as string;
    },
  },
  {
    name: 'Gemm transB with bias',
    inputs: [{ name: 'a', shape: [2, 5] }],
    linear: true,
    build: (g, [a]) => {
      const next = random(11);
      const b = g.addConstant(
        'b',
        Float32Array.from({ length: 15 }, () => next() - 0.5),
        [3, 5],
      );
      const c = g.addConstant('c', [0.1, 0.2, 0.3], [3]);
      return g.addNode('Gemm', [a as string, b, c], { transB: 1, alpha: { float: 0.7 } })[0] as string;
    },
  },
  {
    name: 'Gemm transA, both operands on the path',
    inputs: [
      { name: 'a', shape: [4, 2] },
      { name: 'b', shape: [4, 3] },
    ],
    build: (g, [a, b]) => g.addNode('Gemm', [a as string, b as string], { transA: 1 })[0] as string,
  },
  {
    name: 'Gemm transA and transB on the path',
    inputs: [
      { name: 'a', shape: [4, 2] },
      { name: 'b', shape: [3, 4] },
    ],
    build: (g, [a, b]) => g.addNode('Gemm', [a as string, b as string], { transA: 1, transB: 1, alpha: { float: 2 } })[0] as string,
  },
  {
    name: 'MatMul batched with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [4, 5] },
    ],
    build: binary('MatMul'),
  },
  {
    name: 'MatMul by a vector',
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [4] },
    ],
    build: binary('MatMul'),
  },
  {
    name: 'Add with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 4, 4] },
      { name: 'b', shape: [3, 1, 1] },
    ],
    linear: true,
    build: binary('Add'),
  },
  {
    name: 'Sub with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 1, 4] },
      { name: 'b', shape: [2, 3, 1] },
    ],
    linear: true,
    build: binary('Sub'),
  },
  {
    name: 'Mul with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 4, 4] },
      { name: 'b', shape: [1, 3, 1, 1] },
    ],
    build: binary('Mul'),
  },
  {
    name: 'Div with broadcasting',
    inputs: [
      { name: 'a', shape: [2, 3, 4] },
      { name: 'b', shape: [3, 1], kind: 'positive' },
    ],
    build: binary('Div'),
  },
  {
    name: 'Sum of three',
    inputs: [
      { name: 'a', shape: [2, 3] },
      { name: 'b', shape: [3] },
      { name: 'c', shape: [2, 1] },
    ],
    linear: true,
    build: (g, names) => g.addNode('Sum', names)[0] as string,
  },
  {
    name: 'Where',
    inputs: [
      { name: 'a', shape: [2, 3], kind: 'awayFromZero' },
      { name: 'b', shape: [3] },
    ],
    build: (g, [a, b]) => {
      const cond = g.addNode('Greater', [a as string, g.addConstant('z', [0], [])])[0] as string;
      return g.addNode('Where', [cond, a as string, b as string])[0] as string;
    },
  },
  { name: 'Relu', inputs: [{ name: 'x', shape: [2, 3, 4], kind: 'awayFromZero' }], build: unary('Relu') },
  {
    name: 'LeakyRelu',
    inputs: [{ name: 'x', shape: [2, 3, 4], kind: 'awayFromZero' }],
    build: unary('LeakyRelu', { alpha: { float: 0.2 } }),
  },
  {
    name: 'PRelu',
    inputs: [{ name: 'x', shape: [1, 3, 2, 2], kind: 'awayFromZero' }],
    build: (g, [x]) => g.addNode('PRelu', [x as string, g.addConstant('s', [0.1, 0.2, 0.3], [3, 1, 1])])[0] as string,
  },
  {
    name: 'Clip (ReLU6-like bounds)',
    inputs: [{ name: 'x', shape: [3, 8], kind: 'awayFromClip' }],
    build: (g, [x]) => g.addNode('Clip', [x as string, g.addConstant('lo', [-0.5], []), g.addConstant('hi', [0.7], [])])[0] as string,
  },
  { name: 'Sigmoid', inputs: [{ name: 'x', shape: [2, 5] }], build: unary('Sigmoid') },
  {
    name: 'HardSigmoid',
    inputs: [{ name: 'x', shape: [4, 6], kind: 'awayFromZero' }],
    build: unary('HardSigmoid', { alpha: { float: 0.3 }, beta: { float: 0.4 } }),
  },
  {
    name: 'HardSwish',
    inputs: [{ name: 'x', shape: [4, 6] }],
    build: (g, [x]) => g.addNode('HardSwish', [g.addNode('Mul', [x as string, g.addConstant('k', [2.5], [])])[0] as string])[0] as string,
  },
  { name: 'Tanh', inputs: [{ name: 'x', shape: [2, 5] }], build: unary('Tanh') },
  { name: 'Exp', inputs: [{ name: 'x', shape: [2, 5] }], build: unary('Exp') },
  { name: 'Neg', inputs: [{ name: 'x', shape: [2, 5] }], linear: true, build: unary('Neg') },
  { name: 'Sqrt', inputs: [{ name: 'x', shape: [2, 5], kind: 'positive' }], build: unary('Sqrt') },
  { name: 'Erf', inputs: [{ name: 'x', shape: [2, 5] }], build: unary('Erf') },
  {
    name: 'Pow by a constant',
    inputs: [{ name: 'x', shape: [2, 5] }],
    build: (g, [x]) => g.addNode('Pow', [x as string, g.addConstant('e', [3], [])])[0] as string,
  },
  {
    name: 'Softmax inside the network',
    inputs: [{ name: 'x', shape: [2, 4, 3] }],
    build: (g, [x]) => {
      const s = g.addNode('Softmax', [x as string], { axis: 1 })[0] as string;
      return g.addNode('Mul', [s, g.addConstant('k', [1, 2, 3], [3])])[0] as string;
    },
  },
  {
    name: 'Identity and Dropout',
    inputs: [{ name: 'x', shape: [3, 2] }],
    linear: true,
    build: (g, [x]) => g.addNode('Dropout', [g.addNode('Identity', [x as string])[0] as string])[0] as string,
  },
  {
    name: 'Reshape',
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    linear: true,
    build: (g, [x]) => g.addNode('Reshape', [x as string, int64(g, [4, -1])])[0] as string,
  },
  { name: 'Flatten', inputs: [{ name: 'x', shape: [2, 3, 2, 2] }], linear: true, build: unary('Flatten', { axis: 2 }) },
  {
    name: 'Squeeze and Unsqueeze',
    inputs: [{ name: 'x', shape: [2, 1, 3] }],
    linear: true,
    build: (g, [x]) =>
      g.addNode('Unsqueeze', [g.addNode('Squeeze', [x as string, int64(g, [1])])[0] as string, int64(g, [0])])[0] as string,
  },
  { name: 'Transpose', inputs: [{ name: 'x', shape: [2, 3, 4] }], linear: true, build: unary('Transpose', { perm: [2, 0, 1] }) },
  { name: 'Transpose without perm', inputs: [{ name: 'x', shape: [2, 3, 4] }], linear: true, build: unary('Transpose') },
  {
    name: 'Expand',
    inputs: [{ name: 'x', shape: [3, 1] }],
    linear: true,
    build: (g, [x]) => g.addNode('Expand', [x as string, int64(g, [2, 3, 4])])[0] as string,
  },
  {
    name: 'Concat with a constant between',
    inputs: [
      { name: 'a', shape: [2, 2, 3] },
      { name: 'b', shape: [2, 4, 3] },
    ],
    linear: true,
    build: (g, [a, b]) =>
      g.addNode('Concat', [a as string, g.addConstant('k', new Float32Array(6).fill(1), [2, 1, 3]), b as string], {
        axis: -2,
      })[0] as string,
  },
  {
    name: 'Split with one output unused',
    inputs: [{ name: 'x', shape: [2, 7, 3] }],
    linear: true,
    build: (g, [x]) => {
      const [p, , r] = g.addNode('Split', [x as string, int64(g, [2, 4, 1])], { axis: 1 }, { outputCount: 3 }) as [string, string, string];
      return g.addNode('Concat', [r, p], { axis: 1 })[0] as string;
    },
  },
  {
    name: 'Slice with steps and negative bounds',
    inputs: [{ name: 'x', shape: [3, 10] }],
    linear: true,
    build: (g, [x]) =>
      g.addNode('Slice', [x as string, int64(g, [1, -2]), int64(g, [3, -10]), int64(g, [0, 1]), int64(g, [1, -3])])[0] as string,
  },
  {
    name: 'Pad constant',
    inputs: [{ name: 'x', shape: [1, 2, 3, 3] }],
    linear: true,
    build: (g, [x]) => g.addNode('Pad', [x as string, int64(g, [0, 0, 1, 2, 0, 1, 2, 0])])[0] as string,
  },
  {
    name: 'Pad reflect',
    inputs: [{ name: 'x', shape: [1, 2, 4, 4] }],
    linear: true,
    build: (g, [x]) => g.addNode('Pad', [x as string, int64(g, [0, 0, 2, 1, 0, 0, 1, 3])], { mode: 'reflect' })[0] as string,
  },
  {
    name: 'Pad edge',
    inputs: [{ name: 'x', shape: [1, 1, 3, 3] }],
    linear: true,
    build: (g, [x]) => g.addNode('Pad', [x as string, int64(g, [0, 0, 2, 2, 0, 0, 1, 1])], { mode: 'edge' })[0] as string,
  },
  {
    name: 'ReduceMean without keepdims',
    inputs: [{ name: 'x', shape: [2, 3, 4, 5] }],
    linear: true,
    build: unary('ReduceMean', { axes: [-1, 2], keepdims: 0 }),
  },
  {
    name: 'ReduceSum with axes input',
    inputs: [{ name: 'x', shape: [2, 3, 4] }],
    linear: true,
    build: (g, [x]) => g.addNode('ReduceSum', [x as string, int64(g, [1])], { keepdims: 1 })[0] as string,
  },
  {
    name: 'Gather of one token along axis 1 (a class token)',
    inputs: [{ name: 'x', shape: [2, 5, 3] }],
    linear: true,
    build: (g, [x]) => g.addNode('Gather', [x as string, g.addConstant('i', [0], [], 'int64')], { axis: 1 })[0] as string,
  },
  {
    name: 'Gather with repeated and negative indices',
    inputs: [{ name: 'x', shape: [4, 3] }],
    linear: true,
    build: (g, [x]) => g.addNode('Gather', [x as string, g.addConstant('i', [2, -1, 2, 0], [2, 2], 'int64')])[0] as string,
  },
  {
    name: 'LayerNormalization over the last axis, scale and bias',
    inputs: [
      { name: 'x', shape: [2, 3, 6] },
      { name: 'scale', shape: [6] },
      { name: 'bias', shape: [6] },
    ],
    build: (g, [x, scale, bias]) =>
      g.addNode('LayerNormalization', [x as string, scale as string, bias as string], { epsilon: { float: 1e-5 } })[0] as string,
  },
  {
    name: 'LayerNormalization over the last two axes, no bias',
    inputs: [
      { name: 'x', shape: [2, 3, 4] },
      { name: 'scale', shape: [3, 4] },
    ],
    build: (g, [x, scale]) =>
      g.addNode('LayerNormalization', [x as string, scale as string], { axis: 1, epsilon: { float: 1e-3 } })[0] as string,
  },
  { name: 'Gelu', opset: 20, inputs: [{ name: 'x', shape: [3, 4] }], build: unary('Gelu') },
  { name: 'Gelu tanh', opset: 20, inputs: [{ name: 'x', shape: [3, 4] }], build: unary('Gelu', { approximate: 'tanh' }) },
];

async function run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, name: string): Promise<Float32Array> {
  const out = await session.run(feeds);
  return out[name]?.data as Float32Array;
}

describe('every gradient rule agrees with finite differences', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const next = random(c.name.length * 101 + 17);
      const model = makeModel(c);
      const names = c.inputs.map((i) => i.name);
      const values = c.inputs.map((i) => draw(i, next));
      const forward = await ort.InferenceSession.create(model);
      const output = forward.outputNames[0] as string;
      const feeds = (vals: Float32Array[]) =>
        Object.fromEntries(c.inputs.map((i, k) => [i.name, new ort.Tensor('float32', vals[k] as Float32Array, i.shape)]));
      const y = await run(forward, feeds(values), output);
      const yDims = [...((await forward.run(feeds(values)))[output]?.dims ?? [])];
      const seed = Float32Array.from({ length: y.length }, () => next() * 2 - 1);
      const graph = buildGradientGraph(model, { targets: names });
      const backward = await ort.InferenceSession.create(graph.bytes);
      const out = await backward.run({ ...feeds(values), [graph.seed]: new ort.Tensor('float32', seed, yDims) });
      const loss = (ys: Float32Array) => ys.reduce((sum, v, i) => sum + v * (seed[i] as number), 0);
      for (const [k, input] of c.inputs.entries()) {
        const gradient = out[graph.targets[k]?.gradient as string] as ort.Tensor;
        assert.deepEqual([...gradient.dims], input.shape, `gradient of ${input.name} has the input's shape`);
        // Directional derivatives along random directions: central differences of the seeded loss.
        for (let trial = 0; trial < 3; trial++) {
          const direction = Float32Array.from({ length: (values[k] as Float32Array).length }, () => next() * 2 - 1);
          const step = c.linear ? 1 : 1e-3;
          const shifted = (sign: number) =>
            values.map((v, j) => (j === k ? Float32Array.from(v, (x, i) => x + sign * step * (direction[i] as number)) : v));
          const numeric =
            (loss(await run(forward, feeds(shifted(1)), output)) - loss(await run(forward, feeds(shifted(-1)), output))) / (2 * step);
          const analytic = (gradient.data as Float32Array).reduce((sum, g, i) => sum + g * (direction[i] as number), 0);
          const tolerance = (c.linear ? 1e-4 : 1e-2) * Math.max(1, Math.abs(numeric));
          assert.ok(
            Math.abs(numeric - analytic) <= tolerance,
            `${input.name}, trial ${trial}: finite difference ${numeric} vs gradient ${analytic}`,
          );
        }
      }
      await forward.release();
      await backward.release();
    });
  }
});
