import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { resizeBicubic, resizeBilinear } from '../src/engine/resize.js';
import { Explainer } from '../src/explainer.js';
import type { FloatArray } from '../src/io/npy.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';
import { difference } from './helpers.js';

// Tiny models whose activations and gradients are known in closed form, so each method's formula can be
// checked against a hand computation rather than against our own code.

const CLASSES = 4;
/** Head weights W[k][c]: class k, channel c. */
const W = Array.from({ length: CLASSES }, (_, k) => Array.from({ length: 3 }, (_, c) => Math.sin(3 * k + c + 1)));

/**
 * x -> 1x1 identity Conv ('features', so A = x) -> [AveragePool 2x2 /2] -> GlobalAveragePool -> Gemm(W): the
 * class-k score is sum_c W[k][c] mean(A_c), so G_c = W[k][c] / (positions of the layer), a constant plane.
 */
function poolingModel(pool: boolean): Uint8Array {
  const g = OnnxGraph.empty('pooling', 13);
  g.addInput('input', DataType.FLOAT, [1, 3, 'h', 'w']);
  const eye = g.addConstant(
    'eye',
    Float32Array.from({ length: 9 }, (_, i) => (i % 4 === 0 ? 1 : 0)),
    [3, 3, 1, 1],
  );
  g.addNode('Conv', ['input', eye], {}, { outputs: ['conv'], name: '/conv/Conv' });
  if (pool)
    g.addNode('AveragePool', ['conv'], { kernel_shape: [2, 2], strides: [2, 2] }, { outputs: ['features'], name: '/features/Pool' });
  else g.addNode('Identity', ['conv'], {}, { outputs: ['features'], name: '/features/Identity' });
  const [pooled] = g.addNode('GlobalAveragePool', ['features']);
  const [flat] = g.addNode('Flatten', [pooled as string]);
  g.addNode(
    'Gemm',
    [flat as string, g.addConstant('fc', Float32Array.from(W.flat()), [CLASSES, 3])],
    { transB: 1 },
    { outputs: ['logits'] },
  );
  g.addOutput('logits');
  return g.toBytes();
}

/** A linear classifier on the pixels, logits = V flatten(x): dS_k/dx = V[k] whatever x is. */
const SIDE = 12;
const V = Array.from({ length: CLASSES * 3 * SIDE * SIDE }, (_, i) => Math.cos(0.37 * i) * (1 + (i % 5)));
function linearModel(): Uint8Array {
  const g = OnnxGraph.empty('linear', 13);
  g.addInput('input', DataType.FLOAT, [1, 3, SIDE, SIDE]);
  g.addNode('Flatten', ['input'], {}, { outputs: ['flat'], name: '/flatten/Flatten' });
  g.addNode('Gemm', ['flat', g.addConstant('v', Float32Array.from(V), [CLASSES, 3 * SIDE * SIDE])], { transB: 1 }, { outputs: ['logits'] });
  g.addOutput('logits');
  return g.toBytes();
}

function image(side: number, seed: number): FloatArray {
  return {
    data: Float32Array.from({ length: 3 * side * side }, (_, i) => Math.sin(seed + 0.13 * i) + 0.3 * Math.cos(0.05 * i * i)),
    shape: [1, 3, side, side],
  };
}

/** (v - min) / (max - min). */
function minMax(values: number[]): number[] {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return values.map((v) => (v - lo) / (hi - lo));
}

/** pytorch-grad-cam's scale twice around an identity resize: (v - min) / (1e-7 + max - min), applied twice. */
function gradCamScaleTwice(values: number[]): number[] {
  const once = (xs: number[]) => {
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    return xs.map((v) => Math.fround((v - lo) / (1e-7 + hi - lo)));
  };
  return once(once(values.map((v) => Math.max(0, v))));
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, bound: number, what: string): void {
  const d = difference(actual, expected);
  assert.ok(d.max <= bound, `${what}: max diff ${d.max}`);
}

describe('method formulas on models with closed-form gradients', () => {
  const side = 16;
  const x = image(side, 1);
  const positions = side * side;
  const cls = 2;
  const flat = (c: number, p: number) => x.data[c * positions + p] as number;
  const explainer = Explainer.create(ort, { model: poolingModel(false), layer: 'features', threads: 2 });
  const linear = Explainer.create(ort, { model: linearModel(), layer: 'flat', threads: 2 });
  after(async () => {
    await (await explainer).dispose();
    await (await linear).dispose();
  });

  it('Grad-CAM: L = sum_c mean(G_c) A_c', async () => {
    const result = await (await explainer).explain(x, { method: 'gradcam', classIndex: cls, raw: true });
    const expected = Array.from({ length: positions }, (_, p) =>
      [0, 1, 2].reduce((s, c) => s + ((W[cls]?.[c] as number) / positions) * flat(c, p), 0),
    );
    close(result.raw?.data ?? [], expected, 1e-9, 'raw');
    close(result.map, gradCamScaleTwice(expected), 1e-6, 'map');
  });

  it('NormGrad: L(p) = ||A(p)|| ||G(p)||', async () => {
    const result = await (await explainer).explain(x, { method: 'normgrad', classIndex: cls, raw: true });
    const gNorm = Math.hypot(...(W[cls] as number[])) / positions;
    const expected = Array.from({ length: positions }, (_, p) => Math.hypot(flat(0, p), flat(1, p), flat(2, p)) * gNorm);
    close(result.raw?.data ?? [], expected, 1e-9, 'raw');
    close(result.map, gradCamScaleTwice(expected), 1e-6, 'map');
  });

  it('resize-first: ReLU and min-max after the bilinear resize of the raw map', async () => {
    const pooled = await Explainer.create(ort, { model: poolingModel(true), layer: 'features', threads: 2 });
    try {
      const result = await pooled.explain(x, { method: 'hirescam', classIndex: cls, postprocess: 'resize-first', raw: true });
      const half = side / 2;
      const a = (c: number, i: number, j: number) =>
        (flat(c, 2 * i * side + 2 * j) +
          flat(c, 2 * i * side + 2 * j + 1) +
          flat(c, (2 * i + 1) * side + 2 * j) +
          flat(c, (2 * i + 1) * side + 2 * j + 1)) /
        4;
      const raw = Array.from({ length: half * half }, (_, p) =>
        [0, 1, 2].reduce((s, c) => s + ((W[cls]?.[c] as number) / (half * half)) * a(c, Math.floor(p / half), p % half), 0),
      );
      close(result.raw?.data ?? [], raw, 1e-9, 'raw');
      assert.deepEqual([result.raw?.height, result.width], [half, side]);
      const resized = resizeBilinear(Float32Array.from(raw), [1, 1, half, half], side, side);
      close(result.map, minMax([...resized].map((v) => Math.max(0, v))), 1e-6, 'map');
    } finally {
      await pooled.dispose();
    }
  });

  it('multi-scale CAM: the mean over kept scales of each raw map resized to the first resolution', async () => {
    const resolutions = [16, 24, 20];
    const result = await (await explainer).explain(x, { method: 'hirescam', classIndex: cls, multiScale: true, resolutions, raw: true });
    const expected = new Float64Array(positions);
    for (const r of resolutions) {
      const scaled = resizeBicubic(x.data, x.shape, r, r);
      const raw = Float32Array.from({ length: r * r }, (_, p) =>
        [0, 1, 2].reduce((s, c) => s + ((W[cls]?.[c] as number) / (r * r)) * (scaled[c * r * r + p] as number), 0),
      );
      const back = r === side ? raw : resizeBilinear(raw, [1, 1, r, r], side, side);
      for (let p = 0; p < positions; p++) expected[p] = (expected[p] as number) + (back[p] as number) / resolutions.length;
    }
    const d = difference(result.raw?.data ?? [], expected);
    assert.ok(d.max <= 1e-6 * d.scale, `raw: max diff ${d.max} at scale ${d.scale}`);
    assert.deepEqual(result.usedResolutions, resolutions);
  });

  it('gradient: max over channels of |dS/dx|; gradient x input: |sum over channels of x dS/dx|', async () => {
    const e = await linear;
    const xs = image(SIDE, 2);
    const plane = SIDE * SIDE;
    const v = (c: number, p: number) => V[(cls * 3 + c) * plane + p] as number;
    const gradient = await e.explain(xs, { method: 'gradient', classIndex: cls, raw: true });
    close(
      gradient.raw?.data ?? [],
      Array.from({ length: 3 * plane }, (_, i) => v(Math.floor(i / plane), i % plane)),
      1e-6,
      'raw gradient',
    );
    const expected = Array.from({ length: plane }, (_, p) => Math.max(...[0, 1, 2].map((c) => Math.abs(v(c, p)))));
    close(gradient.map, minMax(expected), 1e-6, 'gradient map');
    const times = await e.explain(xs, { method: 'gradient_x_input', classIndex: cls });
    const timesExpected = Array.from({ length: plane }, (_, p) =>
      Math.abs([0, 1, 2].reduce((s, c) => s + v(c, p) * (xs.data[c * plane + p] as number), 0)),
    );
    close(times.map, minMax(timesExpected), 1e-6, 'gradient x input map');
  });

  it('SmoothGrad averages gradients over noise: on a linear model it is the gradient; IG is exactly complete', async () => {
    const e = await linear;
    const xs = image(SIDE, 3);
    const plain = await e.explain(xs, { method: 'gradient', classIndex: cls });
    const smooth = await e.explain(xs, { method: 'smoothgrad', classIndex: cls, samples: 5, seed: 3 });
    close(smooth.map, plain.map, 1e-6, 'smoothgrad vs gradient');
    const ig = await e.explain(xs, { method: 'integrated_gradients', classIndex: cls, samples: 4 });
    assert.ok((ig.completenessError as number) < 1e-5, `completeness ${ig.completenessError}`);
    const times = await e.explain(xs, { method: 'gradient_x_input', classIndex: cls });
    close(ig.map, times.map, 1e-5, 'IG on a linear model is gradient x input');
  });
});
