import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Explainer } from '../../src/explainer.js';
import { bytes, difference, FIXTURES, npy, ROOT, scaleCam } from '../helpers.js';

// torchvision's fcn_resnet50 and deeplabv3_mobilenet_v3_large (seeded, 135 and 44 MB: not committed) explained by a
// region as pytorch-grad-cam's SemanticSegmentationTarget defines it; references committed by
// scripts/make_torchvision_segmentation_fixture.py, which also makes the models (same seed, same files) when missing.
const PYTHON = '/usr/bin/python3';
const MODELS = resolve(ROOT, 'bench/models/segmentation');
const FOLDER = resolve(FIXTURES, 'segmentation/torchvision');
const ARCHS = ['fcn_resnet50', 'deeplabv3_mobilenet_v3_large'];
const missing = () => ARCHS.some((a) => !existsSync(resolve(MODELS, `${a}.onnx`)));
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
const skip =
  !missing() || hasTorch ? false : `${PYTHON} cannot import torchvision to export the models (apt-get install python3-torchvision)`;
if (skip) process.stdout.write(`# SKIPPED torchvision segmenters: ${skip}\n`);

/** The bound on max |ours - exact| for each method, or 1.01x pytorch-grad-cam float32's own error where larger. */
const BOUNDS: Record<string, number> = { gradcam: 2e-5, gradcampp: 2e-5, hirescam: 2e-5, xgradcam: 2e-5, layercam: 2e-5 };

interface Case {
  model: string;
  layer: string;
  class: number;
  method: string;
  map: string;
  float64: string;
}

describe('extended: torchvision segmenters, a region explained as pytorch-grad-cam does', { skip }, () => {
  const fixture = JSON.parse(readFileSync(resolve(FOLDER, 'cases.json'), 'utf8')) as { input: string; cases: Case[] };
  const explainers = new Map<string, Promise<Explainer>>();
  const explainer = (c: Case): Promise<Explainer> => {
    let made = explainers.get(c.model);
    if (!made) {
      if (missing()) {
        const run = spawnSync(PYTHON, [resolve(ROOT, 'scripts/make_torchvision_segmentation_fixture.py'), MODELS], { encoding: 'utf8' });
        assert.equal(run.status, 0, run.stderr);
      }
      made = Explainer.create(ort, { model: bytes(resolve(MODELS, `${c.model}.onnx`)), layer: `model.${c.layer}`, threads: 2 });
      explainers.set(c.model, made);
    }
    return made;
  };
  after(async () => {
    for (const e of explainers.values()) await (await e).dispose();
  });
  const input = npy(resolve(FIXTURES, fixture.input));
  for (const c of fixture.cases)
    it(`${c.model}: ${c.method} of the region predicted as class ${c.class}`, async (t) => {
      const e = await explainer(c);
      const result = await e.explain(input, { method: c.method, target: { segment: c.class }, raw: true });
      const raw = result.raw as { data: ArrayLike<number>; height: number; width: number };
      const exact = npy(resolve(FOLDER, c.float64));
      assert.deepEqual([raw.height, raw.width], exact.shape.slice(-2), "the layer's grid");
      const ours = difference(scaleCam(raw.data), exact.data);
      const pytorch = difference(npy(resolve(FOLDER, c.map)).data, exact.data);
      const bound = Math.max(BOUNDS[c.method] as number, 1.01 * pytorch.max);
      t.diagnostic(`max |ours - exact| ${ours.max.toExponential(2)}, pytorch-grad-cam float32 ${pytorch.max.toExponential(2)}`);
      assert.ok(ours.max <= bound, `max |ours - exact| = ${ours.max}; bound ${bound}; pytorch-grad-cam float32's own ${pytorch.max}`);
    });
});
