import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GradientSession } from '../src/engine/gradient-session.js';
import type { Target } from '../src/engine/scores.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { resolveLayer } from '../src/onnx/layers.js';
import { bytes, difference, FIXTURES, npy, oneHot, runGradient } from './helpers.js';

const TORCH = resolve(FIXTURES, 'torch');
const cases = JSON.parse(readFileSync(resolve(TORCH, 'cases.json'), 'utf8')) as {
  zoo: { size: number; class: number; other: number; prefix: string; layers: string[] }[];
};

// A CNN with strided, dilated and depthwise Conv, ReLU6 (Clip), HardSwish, LeakyReLU, squeeze-excite
// (GlobalAveragePool, Sigmoid, Mul with broadcasting), Concat, Tanh, reflect Pad, AveragePool without
// padded counts, overlapping ceil-mode MaxPool, ConvTranspose, Sub, Div, ReduceMean and Gemm,
// exported by torch.onnx.export; gradients from PyTorch autograd (scripts/make_fixtures.py).
describe('gradient graphs equal PyTorch autograd on a whole model', () => {
  const model = bytes(resolve(TORCH, 'zoo.onnx'));
  const graph = OnnxGraph.fromBytes(model);
  for (const c of cases.zoo) {
    it(`input and layer gradients at ${c.size} px, class ${c.class}`, async () => {
      const input = npy(resolve(TORCH, `${c.prefix}.input.npy`));
      const targets = ['input', ...c.layers.map((layer) => resolveLayer(graph, layer).tensor)];
      const run = await runGradient(model, { targets }, input, oneHot(7, c.class), [1, 7]);
      const logits = difference(run.logits.data as Float32Array, npy(resolve(TORCH, `${c.prefix}.logits.npy`)).data);
      assert.ok(logits.max < 1e-5, `logits differ by ${logits.max}`);
      const names = ['input', ...c.layers];
      names.forEach((name, i) => {
        const expected = npy(resolve(TORCH, `${c.prefix}.grad.${name}.npy`));
        const gradient = run.gradients[i];
        assert.ok(gradient);
        assert.deepEqual([...gradient.dims], expected.shape, `${name} gradient shape`);
        const d = difference(gradient.data as Float32Array, expected.data);
        assert.ok(d.max <= 1e-5 * d.scale + 1e-9, `${name} gradient: max diff ${d.max} at scale ${d.scale}`);
        if (name !== 'input') {
          const activation = npy(resolve(TORCH, `${c.prefix}.act.${name}.npy`));
          const a = difference(run.activations[i]?.data as Float32Array, activation.data);
          assert.ok(a.max <= 1e-5 * a.scale, `${name} activation: max diff ${a.max}`);
        }
      });
    });
  }

  for (const c of cases.zoo) {
    it(`targets beyond one logit at ${c.size} px: softmax probability, contrast and log-probability equal PyTorch autograd`, async () => {
      const input = npy(resolve(TORCH, `${c.prefix}.input.npy`));
      const targets = ['input', ...c.layers.map((layer) => resolveLayer(graph, layer).tensor)];
      const session = await GradientSession.create(ort, graph, targets);
      try {
        const oneHot = Array.from({ length: 7 }, (_, k) => (k === c.class ? 1 : 0));
        const checks: [string, Target][] = [
          ['prob', 'prob'],
          ['contrast', { contrast: c.other }],
          // Weights over the probabilities: the one-hot weighting is the probability target.
          ['prob', { weights: oneHot, space: 'probabilities' }],
          // Minus the cross-entropy toward the class: the attack's loss.
          ['logprob', 'logprob'],
        ];
        for (const [name, target] of checks) {
          const pass = await session.run(input, c.class, target);
          ['input', ...c.layers].forEach((layer, i) => {
            const expected = npy(resolve(TORCH, `${c.prefix}.${name}.grad.${layer}.npy`));
            const d = difference(pass.targets[i]?.gradient.data as Float32Array, expected.data);
            assert.ok(d.max <= 1e-5 * d.scale + 1e-9, `${name} ${layer}: max diff ${d.max} at scale ${d.scale}`);
          });
        }
        // The top-1 class needs no class index: the graph adds its one-hot to the seed before the softmax.
        const top = (await session.run(input, null)).output.data;
        const best = top.indexOf(Math.max(...top));
        const implicit = await session.run(input, null, 'prob');
        const explicit = await session.run(input, best, 'prob');
        assert.deepEqual([...(implicit.targets[0]?.gradient.data ?? [])], [...(explicit.targets[0]?.gradient.data ?? [])]);
        // Weights over the logits: e_c - e_other is the contrast.
        const weights = Array.from({ length: 7 }, (_, k) => (k === c.class ? 1 : k === c.other ? -1 : 0));
        const byWeights = await session.run(input, c.class, { weights });
        const contrast = await session.run(input, c.class, { contrast: c.other });
        assert.deepEqual([...(byWeights.targets[1]?.gradient.data ?? [])], [...(contrast.targets[1]?.gradient.data ?? [])]);
      } finally {
        await session.dispose();
      }
    });
  }

  it('lifts an opset-11 export to opset 16 without changing what it computes', async () => {
    const old = bytes(resolve(TORCH, 'old11.onnx'));
    assert.equal(OnnxGraph.fromBytes(old).opset, 11);
    const input = npy(resolve(TORCH, 'old11.input.npy'));
    const run = await runGradient(old, { targets: ['input'] }, input, oneHot(3, 1), [1, 3]);
    const logits = difference(run.logits.data as Float32Array, npy(resolve(TORCH, 'old11.logits.npy')).data);
    assert.ok(logits.max < 1e-5, `logits differ by ${logits.max}`);
    const d = difference(run.gradients[0]?.data as Float32Array, npy(resolve(TORCH, 'old11.grad.input.npy')).data);
    assert.ok(d.max <= 1e-5 * d.scale, `input gradient: max diff ${d.max} at scale ${d.scale}`);
  });
});
