import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GradientSession } from '../src/engine/gradient-session.js';
import { postprocessCam } from '../src/engine/postprocess.js';
import { parseTarget, targetScore, targetSeed } from '../src/engine/scores.js';
import { CamerasError } from '../src/errors.js';
import { Explainer } from '../src/explainer.js';
import type { FloatArray } from '../src/io/npy.js';
import { camMethod, channelSums, weightedChannels } from '../src/methods/base-cam.js';
import { runOrder } from '../src/methods/cameras.js';
import { plane } from '../src/methods/method.js';
import { METHODS, REGISTRY } from '../src/methods/registry.js';
import { scoreCamMask } from '../src/methods/scorecam.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

/** One pass at the explainer's layer: its activation and the class logit's gradient there. */
async function layerPass(explainer: Explainer, input: FloatArray, classIndex: number) {
  const session = await GradientSession.create(ort, OnnxGraph.fromBytes(bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx'))), [
    explainer.layer.tensor,
  ]);
  try {
    const target = (await session.run(input, classIndex)).targets[0];
    return { activation: target?.activation as FloatArray, gradient: target?.gradient as FloatArray };
  } finally {
    await session.dispose();
  }
}

describe('the method registry', () => {
  const explainer = Explainer.create(ort, { model: bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')), layer: 'layer3', threads: 2 });
  const catDog = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
  const dog = npy(resolve(FIXTURES, 'mini_resnet/dog.input.npy'));
  after(async () => (await explainer).dispose());

  it('holds every method once, each with a summary, its needs and its options', () => {
    assert.equal(new Set(METHODS).size, METHODS.length);
    assert.equal(METHODS[0], 'cameras');
    for (const m of REGISTRY) {
      assert.ok(m.summary.length > 10, m.name);
      assert.ok(m.needs.length > 0, m.name);
    }
  });

  it('refuses an option the method cannot honour, naming the method and the option', async () => {
    const e = await explainer;
    const refused: [Parameters<Explainer['explain']>[1], RegExp][] = [
      [{ method: 'scorecam', multiScale: true }, /method 'scorecam' does not take option 'multiScale'/],
      [{ method: 'ablationcam', perScale: true }, /method 'ablationcam' does not take option 'perScale'/],
      [{ method: 'gradient', resolutions: [224] }, /method 'gradient' does not take option 'resolutions'/],
      [{ method: 'gradcam', eigenSign: 'numpy' }, /method 'gradcam' does not take option 'eigenSign'/],
      [{ method: 'cameras', seed: 3 }, /method 'cameras' does not take option 'seed'/],
      [{ method: 'gradcam', perScale: true }, /method 'gradcam' takes 'perScale' only with 'multiScale'/],
      [{ method: 'nothing' }, /unknown method 'nothing'; choose one of: cameras, gradcam/],
      [{ method: 'smoothgrad', smooth: { samples: 2 } }, /method 'smoothgrad' already averages over noise/],
      [{ method: 'gradcam', multiScale: true, perScale: true, smooth: { samples: 2 } }, /'perScale' and 'smooth' do not combine/],
      [{ method: 'gradcam', smooth: { noise: -1 } }, /noise must be a fraction of the input's range from 0 to 10/],
      [{ method: 'gradcam', smooth: { noise: 1e308 } }, /noise must be a fraction of the input's range from 0 to 10/],
      [{ method: 'smoothgrad', samples: 1e8 }, /samples must be a whole number from 1 to 10000/],
      [{ method: 'integrated_gradients', samples: 0 }, /samples must be a whole number from 1 to 10000/],
      [{ method: 'gradcam', target: { contrast: 5 }, classIndex: 5 }, /contrast class 5 is the explained class/],
      [{ method: 'gradcam', target: { weights: [1, 2] } }, /target weights have 2 entries; the model has 10 classes/],
    ];
    for (const [options, message] of refused)
      await assert.rejects(e.explain(catDog, options), (error: Error) => error instanceof CamerasError && message.test(error.message));
    await assert.rejects(e.explainBatch([catDog], { method: 'gradcam', batch: true }), /method 'gradcam' does not stack images/);
    // An option switched off asks nothing of the method.
    assert.equal((await e.explain(catDog, { method: 'scorecam', multiScale: false, perScale: false })).empty, false);
  });

  it("returns the raw signed map on request: HiResCAM is sum_k G_k A_k of one pass; post-processed, the map is pytorch-grad-cam's", async () => {
    const e = await explainer;
    const result = await e.explain(catDog, { method: 'hirescam', classIndex: 5, raw: true });
    const raw = result.raw;
    assert.ok(raw);
    assert.deepEqual([raw.channels, raw.height, raw.width], [1, 14, 14]);
    // The raw map from the layer's own activation and gradient, summed here.
    const { activation, gradient } = await layerPass(e, catDog, 5);
    const [, channels, h, w] = activation.shape as [number, number, number, number];
    const expected = new Float64Array(h * w);
    for (let c = 0; c < channels; c++)
      for (let p = 0; p < h * w; p++)
        expected[p] = (expected[p] as number) + (activation.data[c * h * w + p] as number) * (gradient.data[c * h * w + p] as number);
    assert.ok(difference(raw.data, expected).max < 1e-12, 'raw = sum G A');
    assert.ok(Math.min(...raw.data) < 0 && Math.max(...raw.data) > 0, 'signed');
    const plain = await e.explain(catDog, { method: 'hirescam', classIndex: 5 });
    assert.equal(plain.raw, undefined);
    // Post-processed (ReLU, scaling, bilinear resize as cv2): pytorch-grad-cam's own map at layer4 (fixture).
    const layer4 = await Explainer.create(ort, {
      model: bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')),
      layer: 'layer4',
      threads: 2,
    });
    try {
      const map = (await layer4.explain(catDog, { method: 'hirescam', classIndex: 5 })).map;
      const d = difference(map, npy(resolve(FIXTURES, 'mini_resnet/baselines/cat_dog.layer4.hirescam.c5.npy')).data);
      assert.ok(d.max < 1e-5, `map differs from pytorch-grad-cam's by ${d.max}`);
    } finally {
      await layer4.dispose();
    }
    const input = await e.explain(catDog, { method: 'gradient_x_input', classIndex: 5, raw: true });
    assert.deepEqual([input.raw?.channels, input.raw?.height, input.raw?.width], [3, 224, 224], 'input attributions keep their channels');
  });

  it('takes a method of your own: a formula in camMethod, passed as the method, computed as written', async () => {
    // Grad-CAM with |mean gradient| weights: a few lines, as a pytorch-grad-cam subclass would be.
    const absGradcam = camMethod({
      name: 'abs_gradcam',
      summary: 'Grad-CAM with absolute weights (a test method)',
      map: ({ activation, gradient, channels, plane }) =>
        weightedChannels(
          channelSums(gradient, channels, plane).map((s) => Math.abs(s / plane)),
          activation,
          channels,
          plane,
        ),
    });
    const e = await explainer;
    const result = await e.explain(catDog, { method: absGradcam, classIndex: 5, raw: true });
    assert.equal(result.method, 'abs_gradcam');
    const { activation, gradient } = await layerPass(e, catDog, 5);
    const [, channels, h, w] = activation.shape as [number, number, number, number];
    const expected = new Float64Array(h * w);
    for (let c = 0; c < channels; c++) {
      let mean = 0;
      for (let p = 0; p < h * w; p++) mean += (gradient.data[c * h * w + p] as number) / (h * w);
      for (let p = 0; p < h * w; p++) expected[p] = (expected[p] as number) + Math.abs(mean) * (activation.data[c * h * w + p] as number);
    }
    assert.ok(difference(result.raw?.data as Float64Array, expected).max < 1e-9, 'its own formula, on the layer');
    // Its picture is the CAM family's post-processing of that raw map, and differs from Grad-CAM's (signed weights).
    assert.deepEqual([...result.map], [...postprocessCam(plane(expected, h, w), 224, 224).map]);
    const gradcam = await e.explain(catDog, { method: 'gradcam', classIndex: 5 });
    assert.ok(difference(result.map, gradcam.map).max > 0.05);
  });

  it('NoiseTunnel wraps any method: smoothgrad is the gradient under `smooth`, and Grad-CAM takes it too', async () => {
    const e = await explainer;
    const smoothgrad = await e.explain(catDog, { method: 'smoothgrad', classIndex: 5, samples: 4, seed: 9 });
    const tunnel = await e.explain(catDog, { method: 'gradient', classIndex: 5, smooth: { samples: 4, seed: 9 } });
    assert.deepEqual([...tunnel.map], [...smoothgrad.map]);
    const gradient = await e.explain(catDog, { method: 'gradient', classIndex: 5 });
    assert.ok(
      Math.abs((tunnel.classProbability as number) - (gradient.classProbability as number)) < 1e-6,
      "the clean input's probability is reported",
    );
    // Zero noise: one copy is the input itself, and the class is picked at the first resolution, as CAMERAS picks it.
    const options = { resolutions: [400, 224] };
    const plainCameras = await e.explain(catDog, options);
    const tunnelled = await e.explain(catDog, { ...options, smooth: { samples: 1, noise: 0 } });
    assert.deepEqual([...tunnelled.map], [...plainCameras.map]);
    assert.equal(tunnelled.classIndex, plainCameras.classIndex);
    assert.ok(Math.abs((tunnelled.classProbability as number) - (plainCameras.classProbability as number)) < 1e-6);
    const a = await e.explain(catDog, { method: 'gradcam', classIndex: 5, smooth: { samples: 3, seed: 1 } });
    const b = await e.explain(catDog, { method: 'gradcam', classIndex: 5, smooth: { samples: 3, seed: 1 } });
    const plain = await e.explain(catDog, { method: 'gradcam', classIndex: 5 });
    assert.deepEqual([...a.map], [...b.map]);
    assert.ok(difference(a.map, plain.map).max > 1e-3, 'the noise changes the map');
  });

  it('reports progress for every method, ending at done = total', async () => {
    const e = await explainer;
    for (const options of [
      { method: 'cameras', resolutions: [224, 288] },
      { method: 'gradcam', multiScale: true, resolutions: [224, 288] },
      { method: 'scorecam' },
      { method: 'ablationcam' },
      { method: 'smoothgrad', samples: 3 },
      { method: 'integrated_gradients', samples: 4 },
      { method: 'normgrad' },
    ]) {
      const calls: [number, number][] = [];
      await e.explain(catDog, { ...options, classIndex: 5, onProgress: (done, total) => calls.push([done, total]) });
      assert.ok(calls.length > 0, `${options.method} reported no progress`);
      const [done, total] = calls.at(-1) as [number, number];
      assert.equal(done, total, `${options.method} ends at ${done}/${total}`);
      for (let i = 1; i < calls.length; i++) assert.ok((calls[i]?.[0] as number) >= (calls[i - 1]?.[0] as number), 'monotone');
    }
  });

  it("multi-scale CAM applies CAMERAS' class-consistency rule (a scale whose top-1 differs is dropped)", async () => {
    const e = await explainer;
    // mini_resnet calls dog.jpg class 4 at every size but 32 px, where it says 6.
    const resolutions = [224, 32, 324];
    const cameras = await e.explain(dog, { resolutions });
    const multi = await e.explain(dog, { method: 'gradcam', multiScale: true, resolutions });
    assert.deepEqual(cameras.classPerResolution, { 224: 4, 32: 6, 324: 4 });
    assert.deepEqual(multi.classPerResolution, cameras.classPerResolution);
    assert.deepEqual(multi.usedResolutions, [224, 324]);
    const kept = await e.explain(dog, { method: 'gradcam', multiScale: true, resolutions: [224, 324] });
    assert.deepEqual([...multi.map], [...kept.map]);
  });

  it('CAMERAS runs the first scale, then the largest first; it reports and fuses the kept ones in the order given', async () => {
    assert.deepEqual(runOrder([224, 32, 424, 324]), [0, 2, 3, 1]);
    assert.deepEqual(runOrder([224, 324, 324, 124]), [0, 1, 2, 3]);
    const e = await explainer;
    const result = await e.explain(dog, { resolutions: [224, 32, 424, 324], perScale: true });
    assert.deepEqual(result.usedResolutions, [224, 424, 324]);
    assert.deepEqual(
      result.scaleMaps?.map((s) => s.resolution),
      [224, 424, 324],
    );
  });

  it('explains a target: probability, contrast and weights scores; a contrast changes the map', async () => {
    const logits = [1, 3, 0.5];
    assert.equal(targetScore(logits, 'logit', 1), 3);
    assert.ok(Math.abs(targetScore(logits, 'prob', 1) - Math.exp(3) / (Math.exp(1) + Math.exp(3) + Math.exp(0.5))) < 1e-12);
    assert.equal(targetScore(logits, { contrast: 2 }, 1), 2.5);
    assert.equal(targetScore(logits, { weights: [1, 0, -2] }, 0), 0);
    assert.deepEqual(parseTarget('contrast:2'), { contrast: 2 });
    assert.deepEqual(
      parseTarget('contrast:cat', (label) => (label === 'cat' ? 7 : Number.NaN)),
      { contrast: 7 },
    );
    assert.throws(() => parseTarget('contrast:dog', () => Number.NaN), /unknown contrast class 'dog'/);
    assert.deepEqual(targetSeed({ contrast: 2 }, null, 3), { seed: Float32Array.from([0, 0, -1]), topOne: 1, softmax: 0, logSoftmax: 0 });
    const e = await explainer;
    const logit = await e.explain(catDog, { method: 'gradcam', classIndex: 5 });
    const contrast = await e.explain(catDog, { method: 'gradcam', classIndex: 5, target: { contrast: 4 } });
    assert.ok(difference(logit.map, contrast.map).max > 0.05);
    // Without a class, a contrast with the class that turns out top-1 (4 here) would be zero: refused.
    await assert.rejects(e.explain(catDog, { method: 'gradcam', target: { contrast: 4 } }), /the top-1 class 4 is the contrast class/);
    // Score-CAM and Ablation-CAM score the target on their masked passes: the probability moves their maps (4e-3 and
    // 0.15 here; Score-CAM softmaxes its scores over channels, so small ones barely move), and a
    // one-hot weighting of the logits is the logit itself.
    for (const method of ['scorecam', 'ablationcam']) {
      const byLogit = await e.explain(catDog, { method, classIndex: 5 });
      const byProb = await e.explain(catDog, { method, classIndex: 5, target: 'prob' });
      const byWeights = await e.explain(catDog, {
        method,
        classIndex: 5,
        target: { weights: Array.from({ length: 10 }, (_, i) => (i === 5 ? 1 : 0)) },
      });
      assert.ok(difference(byLogit.map, byProb.map).max > 1e-3, `${method}: prob moves the map`);
      assert.ok(difference(byLogit.map, byWeights.map).max < 1e-6, `${method}: weights (one-hot) = logit`);
    }
  });

  it("Score-CAM's masks divide by max - min + 1e-8, as pytorch-grad-cam's score_cam.py does", () => {
    // A channel whose upsampled range is 1e-6: with 1e-8 its mask still spans [0, 0.99]; 1e-5 would flatten it to 0.09.
    const values = Float32Array.from([0, 5e-7, 1e-6]);
    const mask = scoreCamMask(values);
    const range = (values[2] as number) - (values[0] as number);
    assert.ok(Math.abs((mask[2] as number) - range / (range + 1e-8)) < 1e-12, `mask top ${mask[2]}`);
    assert.ok((mask[2] as number) > 0.98);
    assert.ok(Math.abs((mask[1] as number) - (values[1] as number) / (range + 1e-8)) < 1e-12);
  });
});
