import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { postprocessCam } from '../src/engine/postprocess.js';
import { parseTarget, targetScore, targetSeed } from '../src/engine/scores.js';
import { CamerasError } from '../src/errors.js';
import { Explainer } from '../src/explainer.js';
import { camMethod, channelSums, weightedChannels } from '../src/methods/base-cam.js';
import { runOrder } from '../src/methods/cameras.js';
import { METHODS, REGISTRY } from '../src/methods/registry.js';
import { scoreCamMask } from '../src/methods/scorecam.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

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
      [{ method: 'gradcam', smooth: { noise: -1 } }, /noise must be a fraction of the input's range, 0 or more/],
      [{ method: 'gradcam', target: { contrast: 5 }, classIndex: 5 }, /contrast class 5 is the explained class/],
      [{ method: 'gradcam', target: { weights: [1, 2] } }, /target weights have 2 entries; the model has 10 classes/],
    ];
    for (const [options, message] of refused)
      await assert.rejects(e.explain(catDog, options), (error: Error) => error instanceof CamerasError && message.test(error.message));
    await assert.rejects(e.explainBatch([catDog], { method: 'gradcam', batch: true }), /method 'gradcam' does not stack images/);
    // An option switched off asks nothing of the method.
    assert.equal((await e.explain(catDog, { method: 'scorecam', multiScale: false, perScale: false })).empty, false);
  });

  it('returns the raw signed map on request; post-processing it again gives the map', async () => {
    const e = await explainer;
    const result = await e.explain(catDog, { method: 'hirescam', classIndex: 5, raw: true });
    const raw = result.raw;
    assert.ok(raw);
    assert.deepEqual([raw.channels, raw.height, raw.width], [1, 14, 14]);
    assert.ok(Math.min(...raw.data) < 0 && Math.max(...raw.data) > 0, 'signed');
    assert.deepEqual([...postprocessCam(raw, 224, 224).map], [...result.map]);
    const plain = await e.explain(catDog, { method: 'hirescam', classIndex: 5 });
    assert.equal(plain.raw, undefined);
    const input = await e.explain(catDog, { method: 'gradient_x_input', classIndex: 5, raw: true });
    assert.deepEqual([input.raw?.channels, input.raw?.height, input.raw?.width], [3, 224, 224], 'input attributions keep their channels');
  });

  it('takes a method of your own: a formula in camMethod, passed as the method', async () => {
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
    const result = await (await explainer).explain(catDog, { method: absGradcam, classIndex: 5 });
    assert.equal(result.method, 'abs_gradcam');
    assert.equal(result.empty, false);
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
    // Score-CAM and Ablation-CAM score the target on their masked passes.
    // Without a class, a contrast with the class that turns out top-1 (4 here) would be zero: refused.
    await assert.rejects(e.explain(catDog, { method: 'gradcam', target: { contrast: 4 } }), /the top-1 class 4 is the contrast class/);
    const score = await e.explain(catDog, { method: 'scorecam', classIndex: 5, target: 'prob' });
    assert.equal(score.empty, false);
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
