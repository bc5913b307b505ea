import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

ortWeb.env.wasm.numThreads = 1;

/** The two runtimes share onnxruntime-common's API. */
const runtimes: [string, typeof ort][] = [
  ['onnxruntime-node', ort],
  ['onnxruntime-web (wasm)', ortWeb as unknown as typeof ort],
];

/** A seeded generator, so every run checks the same numbers. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Small integers, about a third of them zero (as after a ReLU): windows often hold equal maxima. */
function tied(count: number, next: () => number): Float32Array {
  return Float32Array.from({ length: count }, () => Math.max(0, Math.floor(next() * 6) - 2));
}

interface Feed {
  data: Float32Array;
  dims: number[];
}

/** Builds the gradient graph for the input and runs it; returns the input gradient. */
async function inputGradient(rt: typeof ort, model: Uint8Array, maxPoolIndices: boolean, x: Feed, seed: Feed): Promise<Float32Array> {
  const graph = buildGradientGraph(model, { targets: [OnnxGraph.fromBytes(model).inputNames[0] as string], maxPoolIndices });
  const session = await rt.InferenceSession.create(graph.bytes);
  try {
    const out = await session.run({
      [graph.input]: new rt.Tensor('float32', x.data, x.dims),
      [graph.seed]: new rt.Tensor('float32', seed.data, seed.dims),
    });
    const gradient = out[graph.targets[0]?.gradient as string] as ort.Tensor;
    assert.deepEqual([...gradient.dims], x.dims, "the gradient has the input's shape");
    return gradient.data as Float32Array;
  } finally {
    await session.release();
  }
}

async function outputDims(model: Uint8Array, x: Feed): Promise<number[]> {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [session.inputNames[0] as string]: new ort.Tensor('float32', x.data, x.dims) });
    return [...(out[session.outputNames[0] as string]?.dims ?? [])];
  } finally {
    await session.release();
  }
}

/** Both rules on both runtimes; every gradient equals the first (indices on onnxruntime-node). */
async function assertRulesAgree(model: Uint8Array, x: Feed, seed: Feed, expected?: Float32Array): Promise<void> {
  let reference = expected;
  for (const [name, rt] of runtimes) {
    for (const indices of [true, false]) {
      const gradient = await inputGradient(rt, model, indices, x, seed);
      reference ??= gradient;
      const { max } = difference(gradient, reference);
      assert.ok(max <= 1e-6, `${name}, maxPoolIndices ${indices}: max |difference| ${max}`);
    }
  }
}

/** MaxPool's input gradient in plain loops (2-D, NCHW): each window's first maximum takes dy. */
function referenceGradient(x: Float32Array, xDims: number[], dy: Float32Array, yDims: number[], attrs: PoolAttributes): Float32Array {
  const [n, c, h, w] = xDims as [number, number, number, number];
  const [oh, ow] = yDims.slice(2) as [number, number];
  const [kh, kw] = attrs.kernel_shape;
  const [sh, sw] = attrs.strides ?? [1, 1];
  const [dh, dw] = attrs.dilations ?? [1, 1];
  const [ph, pw] = attrs.pads ?? [0, 0];
  const dx = new Float32Array(x.length);
  for (let plane = 0; plane < n * c; plane++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let best = -1;
        for (let a = 0; a < kh; a++) {
          for (let b = 0; b < kw; b++) {
            const r = i * sh - ph + a * dh;
            const q = j * sw - pw + b * dw;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;
            const at = (plane * h + r) * w + q;
            if (best < 0 || (x[at] as number) > (x[best] as number)) best = at;
          }
        }
        dx[best] = (dx[best] as number) + (dy[(plane * oh + i) * ow + j] as number);
      }
    }
  }
  return dx;
}

type PoolAttributes = {
  kernel_shape: number[];
  strides?: number[];
  dilations?: number[];
  pads?: number[];
  ceil_mode?: number;
  auto_pad?: string;
};

interface PoolCase {
  name: string;
  shape: number[];
  attrs: PoolAttributes;
  /** Declare the spatial sizes symbolic, so the rule builds its slices from Shape. */
  dynamic?: boolean;
  /** Also checked against `referenceGradient` (2-D with explicit pads). */
  checkReference?: boolean;
}

const poolCases: PoolCase[] = [
  { name: 'kernel 2, stride 2', shape: [2, 3, 8, 8], attrs: { kernel_shape: [2, 2], strides: [2, 2] }, checkReference: true },
  {
    name: 'kernel 3, stride 2, pads 1 (overlapping, like ResNet stem), dynamic H and W',
    shape: [1, 4, 11, 9],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    dynamic: true,
    checkReference: true,
  },
  {
    name: 'ceil_mode 1',
    shape: [1, 2, 8, 7],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 },
    dynamic: true,
    checkReference: true,
  },
  {
    name: 'ceil_mode 1 with pads',
    shape: [1, 2, 10, 9],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 },
    checkReference: true,
  },
  {
    name: 'dilation 2, stride 1, pads 2',
    shape: [1, 2, 9, 8],
    attrs: { kernel_shape: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
    checkReference: true,
  },
  {
    name: 'dilation 2, stride 2, ceil_mode 1',
    shape: [1, 2, 12, 11],
    attrs: { kernel_shape: [2, 3], strides: [2, 2], dilations: [2, 2], ceil_mode: 1 },
    dynamic: true,
    checkReference: true,
  },
  {
    name: 'asymmetric kernel, strides and pads',
    shape: [2, 2, 9, 10],
    attrs: { kernel_shape: [2, 3], strides: [1, 3], pads: [1, 0, 0, 2] },
    checkReference: true,
  },
  {
    name: 'auto_pad SAME_UPPER, stride 2',
    shape: [1, 3, 9, 8],
    attrs: { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' },
    dynamic: true,
  },
  { name: 'auto_pad SAME_LOWER, stride 2', shape: [1, 3, 7, 10], attrs: { kernel_shape: [2, 3], strides: [2, 2], auto_pad: 'SAME_LOWER' } },
  { name: 'auto_pad SAME_UPPER, stride 1', shape: [1, 2, 6, 6], attrs: { kernel_shape: [2, 2], auto_pad: 'SAME_UPPER' } },
  { name: '1-D, kernel 3, stride 2, pads 1', shape: [2, 3, 13], attrs: { kernel_shape: [3], strides: [2], pads: [1, 1] } },
];

function poolModel(c: PoolCase): Uint8Array {
  const g = OnnxGraph.empty(c.name);
  const dims = c.shape.map((d, i) => (c.dynamic && i >= 2 ? `d${i}` : d));
  g.addInput('x', DataType.FLOAT, dims);
  g.addOutput(g.addNode('MaxPool', ['x'], c.attrs)[0] as string);
  return g.toBytes();
}

/** x -> Conv (integer weights, so every runtime computes the same activations) -> Relu -> MaxPool 3/2/1 -> Gemm. */
function convPoolGemm(): Uint8Array {
  const next = random(5);
  const g = OnnxGraph.empty('conv_pool_gemm');
  g.addInput('x', DataType.FLOAT, ['batch', 3, 12, 12]);
  const w = g.addConstant(
    'w',
    Float32Array.from({ length: 4 * 3 * 9 }, () => Math.floor(next() * 3) - 1),
    [4, 3, 3, 3],
  );
  const conv = g.addNode('Conv', ['x', w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })[0] as string;
  const relu = g.addNode('Relu', [conv])[0] as string;
  const pool = g.addNode('MaxPool', [relu], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })[0] as string;
  const flat = g.addNode('Flatten', [pool])[0] as string;
  const dense = g.addConstant(
    'dense',
    Float32Array.from({ length: 5 * 144 }, () => next() - 0.5),
    [5, 144],
  );
  g.addOutput(g.addNode('Gemm', [flat, dense], { transB: 1 })[0] as string);
  return g.toBytes();
}

describe('MaxPool gradient without Indices equals the one through Indices', () => {
  for (const c of poolCases) {
    it(c.name, async () => {
      const next = random(c.name.length * 31 + 7);
      const model = poolModel(c);
      const x = {
        data: tied(
          c.shape.reduce((a, b) => a * b, 1),
          next,
        ),
        dims: c.shape,
      };
      const yDims = await outputDims(model, x);
      const seed = { data: Float32Array.from({ length: yDims.reduce((a, b) => a * b, 1) }, () => next() * 2 - 1), dims: yDims };
      const expected = c.checkReference ? referenceGradient(x.data, x.dims, seed.data, yDims, c.attrs) : undefined;
      await assertRulesAgree(model, x, seed, expected);
    });
  }

  it('Conv + ReLU + MaxPool + Gemm', async () => {
    const next = random(99);
    const model = convPoolGemm();
    const x = { data: Float32Array.from({ length: 2 * 3 * 144 }, () => Math.floor(next() * 5) - 2), dims: [2, 3, 12, 12] };
    const seed = { data: Float32Array.from({ length: 10 }, () => next() * 2 - 1), dims: [2, 5] };
    await assertRulesAgree(model, x, seed);
  });

  it('with maxPoolIndices false the graph has no Indices output and no ScatterElements', () => {
    for (const model of [...poolCases.map(poolModel), convPoolGemm()]) {
      for (const indices of [true, false]) {
        const graph = OnnxGraph.fromBytes(buildGradientGraph(model, { targets: ['x'], maxPoolIndices: indices }).bytes);
        const pools = graph.nodes.filter((n) => n.opType === 'MaxPool');
        assert.equal(pools.length, 1);
        assert.equal(Boolean(pools[0]?.output?.[1]), indices, `MaxPool has an Indices output: ${!indices}`);
        assert.equal(
          graph.nodes.some((n) => n.opType === 'ScatterElements' || n.opType === 'ScatterND'),
          indices,
        );
      }
    }
  });
});

describe('mini_resnet: input gradient equal with and without MaxPool Indices', () => {
  const model = bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx'));
  const dog = npy(resolve(FIXTURES, 'mini_resnet/dog.input.npy'));
  /** The dog image cropped or tiled to size x size. */
  const image = (size: number): Feed => {
    const [, channels, height, width] = dog.shape as [number, number, number, number];
    const data = new Float32Array(channels * size * size);
    for (let ch = 0; ch < channels; ch++) {
      for (let r = 0; r < size; r++) {
        for (let q = 0; q < size; q++) {
          data[(ch * size + r) * size + q] = dog.data[(ch * height + (r % height)) * width + (q % width)] as number;
        }
      }
    }
    return { data, dims: [1, channels, size, size] };
  };
  const seed = { data: Float32Array.from({ length: 10 }, (_, i) => (i % 3) - 1 + 0.25 * i), dims: [1, 10] };
  for (const size of [224, 352]) {
    it(`${size} px`, async () => {
      const x = image(size);
      for (const [name, rt] of runtimes) {
        const withIndices = await inputGradient(rt, model, true, x, seed);
        const { max, scale } = difference(await inputGradient(rt, model, false, x, seed), withIndices);
        assert.ok(scale > 0, 'the gradient is not all zero');
        assert.ok(max <= 1e-6 && max <= 1e-4 * scale, `${name}: max |difference| ${max} (largest |gradient| ${scale})`);
      }
    });
  }
});
