import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { pgd, saliencyPenalty } from '../src/attacks/pgd.js';
import { saliencyGuidedAttack } from '../src/attacks/saliency-attack.js';
import { softmax } from '../src/engine/scores.js';
import { Explainer } from '../src/explainer.js';
import { readImage } from '../src/io/image-node.js';
import { normalise, PRESETS, type RgbImage, resizeLinearUint8 } from '../src/io/preprocess.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

const preset = PRESETS.torchvision as (typeof PRESETS)[string];

describe('the saliency penalty beta * ||p * (1 - Psi)||_2', () => {
  it('has the closed-form gradient (finite differences) and vanishes, gradient too, when Psi is all ones', () => {
    const p = [0.3, -0.2, 0.1, 0.05, -0.4, 0.25];
    const psi = [0.9, 0.2, 0.5]; // one plane, broadcast over two channels
    const { value, gradient } = saliencyPenalty(p, psi, 50);
    const expected = 50 * Math.sqrt(p.reduce((s, v, i) => s + (v * (1 - (psi[i % 3] as number))) ** 2, 0));
    assert.ok(Math.abs(value - expected) < 1e-12);
    for (let i = 0; i < p.length; i++) {
      const h = 1e-6;
      const up = p.map((v, j) => (j === i ? v + h : v));
      const down = p.map((v, j) => (j === i ? v - h : v));
      const numeric = (saliencyPenalty(up, psi, 50).value - saliencyPenalty(down, psi, 50).value) / (2 * h);
      assert.ok(Math.abs(numeric - (gradient[i] as number)) < 1e-6, `element ${i}: ${numeric} vs ${gradient[i]}`);
    }
    const ones = saliencyPenalty(p, [1, 1, 1], 50);
    assert.equal(ones.value, 0);
    assert.ok(ones.gradient.every((g) => g === 0));
    assert.ok(
      saliencyPenalty([0, 0, 0], [0, 0, 0], 50).gradient.every((g) => g === 0),
      'p = 0: zero, not NaN',
    );
  });
});

describe('PGD on the input gradient of the cross-entropy', () => {
  let explainer: Explainer;
  let image: RgbImage;
  before(async () => {
    // The composite benchmark's trained CNN on one of its images (a bag on a photo), at its 224 px input.
    explainer = await Explainer.create(ort, {
      model: bytes(resolve(ROOT, 'assets/models/composite_fashion_single_scale.onnx')),
      threads: 2,
    });
    image = resizeLinearUint8(await readImage(resolve(ROOT, 'bench/composite/composite_002.jpg')), 224, 224);
  });
  after(() => explainer.dispose());

  it("the loss's input gradient equals PyTorch autograd of -cross_entropy (torch-exported model with ReLU6, depthwise convs)", async () => {
    const zoo = await Explainer.create(ort, { model: bytes(resolve(FIXTURES, 'torch/zoo.onnx')), threads: 2 });
    try {
      for (const [size, cls] of [
        [33, 2],
        [48, 5],
      ] as const) {
        const input = npy(resolve(FIXTURES, `torch/zoo.${size}.input.npy`));
        const { gradient } = await zoo.inputGradient(input, cls, 'logprob');
        const d = difference(gradient, npy(resolve(FIXTURES, `torch/zoo.${size}.logprob.grad.input.npy`)).data);
        assert.ok(d.max <= 1e-5 * d.scale, `${size} px: max diff ${d.max} at scale ${d.scale}`);
      }
    } finally {
      await zoo.dispose();
    }
  });

  it('reaches the least likely class; the 8-bit image it returns is classified so', async () => {
    const r = await pgd(explainer, image, preset, { confidence: 0.99, iterations: 100 });
    assert.ok(r.iterations < 20, `the plain attack needs a few sign steps, not ${r.iterations}`);
    assert.ok(r.success, `probability ${r.probability} after ${r.iterations} steps`);
    const logits = (await explainer.forward([normalise(r.image, preset)]))[0] as Float32Array;
    assert.ok((softmax(logits)[r.targetClass] as number) >= 0.99);
    const clean = (await explainer.forward([normalise(image, preset)]))[0] as Float32Array;
    assert.equal(r.targetClass, clean.indexOf(Math.min(...clean)), 'the least likely class of the clean image');
    assert.notEqual(r.targetClass, r.originalClass);
  });

  it('keeps the perturbation within its budget and the image within [0, 1]', async () => {
    const r = await pgd(explainer, image, preset, { norm: 'linf', epsilon: 2 / 255, stepSize: 1 / 255, confidence: 1, iterations: 6 });
    assert.equal(r.iterations, 6);
    assert.ok(r.linf <= 2 / 255 + 1e-7 && r.linf > 0, `linf ${r.linf * 255}/255`);
    const l2 = await pgd(explainer, image, preset, { norm: 'l2', epsilon: 0.5, stepSize: 0.2, confidence: 1, iterations: 6 });
    // The budget holds for the continuous p; rounding to 8 bits moves each value by at most half a level.
    assert.ok(l2.l2 <= 0.5 + (0.5 / 255) * Math.sqrt(l2.perturbation.length), `l2 ${l2.l2}`);
    await assert.rejects(pgd(explainer, image, preset, { epsilon: -1 }), /epsilon must be a positive number/);
    await assert.rejects(pgd(explainer, image, preset, { beta: 1, saliency: [1, 2] }), /needs a 224 x 224 map/);
    await assert.rejects(pgd(explainer, image, preset, { goal: { class: 99 } }), /target class 99 is out of range/);
  });

  it('with Psi all ones the guided attack is the plain attack, step for step', async () => {
    const ones = new Float64Array(224 * 224).fill(1);
    const plain = await pgd(explainer, image, preset, { confidence: 1, iterations: 5 });
    const guided = await pgd(explainer, image, preset, { confidence: 1, iterations: 5, beta: 50, saliency: ones });
    assert.deepEqual(guided.image.data, plain.image.data);
  });

  it('guided by a map, the perturbation leaves the unsalient pixels less touched than the plain one does', async () => {
    const r = await saliencyGuidedAttack(explainer, image, preset, {
      method: 'cameras',
      explain: { resolutions: [224, 324] },
      confidence: 0.99,
      iterations: 400,
    });
    assert.ok(r.plain?.success && r.guided.success, `plain ${r.plain?.probability}, guided ${r.guided.probability}`);
    const outside = (p: Float32Array) => {
      let inside = 0;
      let total = 0;
      for (let i = 0; i < p.length; i++) {
        const v = (p[i] as number) ** 2;
        total += v;
        inside += v * (r.saliency[i % r.saliency.length] as number);
      }
      return 1 - inside / total;
    };
    // The share of the perturbation's energy off the map (weighted by 1 - Psi) drops.
    assert.ok(outside(r.guided.perturbation) < outside(r.plain?.perturbation as Float32Array));
    assert.equal(r.after.classIndex, r.guided.targetClass);
  });
});
