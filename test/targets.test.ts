import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GradientSession } from '../src/engine/gradient-session.js';
import { resizeInput } from '../src/engine/resize.js';
import type { OutputTarget } from '../src/engine/scores.js';
import { Explainer } from '../src/explainer.js';
import { createExplainer } from '../src/index.js';
import type { FloatArray } from '../src/io/npy.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

const MODEL = resolve(ROOT, 'assets/models/mini_resnet.onnx');
const input = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));

/** The logit of class 5 as a function target: its value, and its gradient with respect to the logits (a one-hot). */
const logitFive: OutputTarget = {
  name: 'logit5',
  score: (output) => output.data[5] as number,
  gradient: (output) => Float32Array.from(output.data, (_, i) => (i === 5 ? 1 : 0)),
};

describe('a function target over an output', () => {
  const explainer = Explainer.create(ort, { model: bytes(MODEL), layer: 'layer3', threads: 2 });
  after(async () => (await explainer).dispose());

  it('equals the class target it spells out, keeps every scale and reports no class (it has none)', async () => {
    const e = await explainer;
    const resolutions = [224, 288, 352];
    const byClass = await e.explain(input, { classIndex: 5, resolutions });
    const byFunction = await e.explain(input, { target: logitFive, resolutions });
    assert.ok(difference(byFunction.map, byClass.map).max < 1e-6, 'the same seed, the same map');
    assert.equal(byFunction.target, 'logit5');
    assert.deepEqual(byFunction.usedResolutions, resolutions, 'no top-1 rule: every scale is kept');
    assert.equal(byFunction.classIndex, undefined);
    assert.equal(byFunction.classPerResolution, undefined);
    assert.equal(byFunction.classProbability, undefined);
    // Under NoiseTunnel too: no class facts from a noisy copy.
    const tunnelled = await e.explain(input, { method: 'gradcam', target: logitFive, smooth: { samples: 2, seed: 1 } });
    assert.equal(tunnelled.classIndex, undefined);
    assert.equal(tunnelled.classProbability, undefined);
  });

  it('without a gradient it serves the methods that only score (Score-CAM, Ablation-CAM), and is refused by the others', async () => {
    const e = await explainer;
    const scoreOnly: OutputTarget = { name: 'logit5', score: logitFive.score };
    for (const method of ['scorecam', 'ablationcam']) {
      const scored = await e.explain(input, { method, target: scoreOnly });
      const byClass = await e.explain(input, { method, classIndex: 5 });
      assert.ok(difference(scored.map, byClass.map).max < 1e-6, `${method}: the function's score is the logit's`);
    }
    await assert.rejects(
      e.explain(input, { method: 'gradcam', target: scoreOnly }),
      /method 'gradcam' follows the target's gradient; give the target a 'gradient' function/,
    );
  });

  it('a refused target does not turn batching off', async () => {
    const session = await GradientSession.create(ort, OnnxGraph.fromBytes(bytes(MODEL)), [
      OnnxGraph.fromBytes(bytes(MODEL)).outputNames[0] as string,
    ]);
    try {
      const two = [input, resizeInput(input, 224)];
      const wrong: OutputTarget = { score: () => 0, gradient: () => new Float32Array(3) };
      await assert.rejects(session.runEach(two, null, wrong), /the target's gradient has 3 values; the output has 10 per image/);
      assert.equal((session as unknown as { batching: boolean }).batching, true, 'batching stays on');
      assert.equal((await session.runEach(two, 5)).length, 2);
    } finally {
      await session.dispose();
    }
  });
});

describe('the profile', () => {
  it("follows a zoo model's input size when the caller overrides it: the resolutions move with it", async () => {
    const explainer = await createExplainer({ model: 'nsfwjs:mobilenet_v2', threads: 2, profile: { inputSize: 256 } });
    try {
      assert.deepEqual(explainer.profile.resolutions, [256, 356, 456, 556, 656, 756, 856, 956]);
      assert.equal(explainer.profile.preprocess, 'unit', "the zoo's other declarations stay");
    } finally {
      await explainer.dispose();
    }
  });

  it('assumes ImageNet labels for a 1000-class model given as bytes too, and says so', async () => {
    const g = OnnxGraph.empty('thousand', 13);
    g.addInput('input', DataType.FLOAT, ['batch', 3, 'height', 'width']);
    const conv = g.addNode('Conv', ['input', g.addConstant('w', new Float32Array(4 * 3 * 3 * 3).fill(0.1), [4, 3, 3, 3])], {
      kernel_shape: [3, 3],
    })[0] as string;
    const pooled = g.addNode('Flatten', [g.addNode('GlobalAveragePool', [conv])[0] as string], { axis: 1 })[0] as string;
    g.addNode(
      'Gemm',
      [pooled, g.addConstant('fc', new Float32Array(1000 * 4).fill(0.01), [1000, 4])],
      { transB: 1 },
      { outputs: ['logits'] },
    );
    g.addOutput('logits', DataType.FLOAT, ['batch', 1000]);
    const explainer = await createExplainer({ model: g.toBytes(), threads: 2 });
    try {
      assert.equal(explainer.profile.labels?.length, 1000);
      assert.equal(explainer.profile.labels?.[281], 'tabby');
      assert.equal(explainer.profile.labelsAssumed, true);
    } finally {
      await explainer.dispose();
    }
  });

  it('records the layer view it detected, and Ablation-CAM explains a second output', async () => {
    const segmenter = await Explainer.create(ort, {
      model: bytes(resolve(FIXTURES, 'segmentation/tiny_seg.onnx')),
      layer: 'backbone',
      threads: 2,
    });
    try {
      assert.equal(segmenter.profile.layerView, undefined, 'nothing declared');
      const seg = npy(resolve(FIXTURES, 'segmentation/input.npy')) as FloatArray;
      const out = await segmenter.explain(seg, { method: 'ablationcam', target: { segment: 0 } });
      const aux = await segmenter.explain(seg, { method: 'ablationcam', target: { segment: 0 }, output: 'aux' });
      assert.deepEqual(segmenter.profile.layerView, { kind: 'nchw' }, 'detected at the first pass');
      assert.ok(difference(out.map, aux.map).max > 0.05, "the aux head's map is its own");
    } finally {
      await segmenter.dispose();
    }
  });
});
