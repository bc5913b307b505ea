import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { readImage } from '../../src/io/image-node.js';
import { PRESETS, preprocess } from '../../src/io/preprocess.js';
import { fuseScales } from '../../src/methods/cameras.js';
import { OnnxGraph } from '../../src/onnx/graph.js';
import { resolveLayer } from '../../src/onnx/layers.js';
import { bytes, difference, hasShared, npy, oneHot, runGradient, SHARED, SHARED_REFERENCE } from '../helpers.js';
import { ParityChecker, referenceCases } from '../parity.js';

// The extended suite reads the full reference fixtures from ../shared (read-only, beside the checkout).
const skip = hasShared ? false : `../shared/fixtures/reference not found beside the checkout (looked in ${SHARED})`;
if (skip) process.stdout.write(`# SKIPPED extended suite: ${skip}\n`);

for (const arch of ['mini_resnet', 'resnet18']) {
  const folder = resolve(SHARED_REFERENCE, arch);
  describe(`extended: every ${arch} reference case`, { skip }, () => {
    const checker = new ParityChecker(folder, resolve(folder, 'model.onnx'));
    after(() => checker.dispose());
    for (const c of hasShared ? referenceCases(folder) : []) it(c.name, () => checker.check(c));
    if (hasShared) it('summed over the cases, no farther from the exact map than PyTorch float32', () => checker.checkSummedError());
  });

  describe(`extended: ${arch} activations and gradients equal the reference's, and fuse to its maps`, { skip }, () => {
    interface Item {
      layer: string;
      class: number;
      resolution: number;
      input: string;
      features: string;
      gradients: string;
    }
    const items: Item[] = hasShared
      ? (JSON.parse(readFileSync(resolve(folder, 'intermediates.json'), 'utf8')) as { items: Item[] }).items
      : [];
    for (const layer of ['layer4', 'layer3']) {
      it(layer, async () => {
        const model = bytes(resolve(folder, 'model.onnx'));
        const tensor = resolveLayer(OnnxGraph.fromBytes(model), layer).tensor;
        const scales = [];
        for (const item of items.filter((i) => i.layer === layer)) {
          const input = npy(resolve(folder, item.input));
          const classes = arch === 'mini_resnet' ? 10 : 1000;
          const run = await runGradient(model, { targets: [tensor] }, input, oneHot(classes, item.class), [1, classes]);
          const features = npy(resolve(folder, item.features));
          const gradients = npy(resolve(folder, item.gradients));
          const a = difference(run.activations[0]?.data as Float32Array, features.data);
          const g = difference(run.gradients[0]?.data as Float32Array, gradients.data);
          assert.ok(a.max <= 1e-5 * a.scale, `${layer} at ${item.resolution}: activations differ by ${a.max}`);
          assert.ok(g.max <= 1e-5 * g.scale, `${layer} at ${item.resolution}: gradients differ by ${g.max}`);
          scales.push({ activation: features, gradient: gradients });
        }
        // Fusing the reference's own tensors must reproduce its map to float precision.
        const cls = items[0]?.class as number;
        const golden = npy(resolve(folder, `cat_dog.${layer}.short.c${cls}.npy`)).data;
        const fused = fuseScales(scales, 224);
        const d = difference(fused.map, golden);
        assert.ok(d.max <= 1e-5, `fusion of reference tensors differs by ${d.max}`);
      });
    }
  });
}

describe("extended: the image path's tensor is the reference input (resnet18's cat_dog.png and dog.jpg)", { skip }, () => {
  for (const name of ['cat_dog.png', 'dog.jpg']) {
    it(name, async () => {
      const fromImage = preprocess(await readImage(resolve(SHARED, 'images', name)), PRESETS.torchvision as never);
      const reference = npy(resolve(SHARED_REFERENCE, 'resnet18', `${name.split('.')[0]}.input.npy`));
      assert.deepEqual(fromImage.shape, reference.shape);
      const d = difference(fromImage.data, reference.data);
      assert.ok(d.max <= 5e-7, `max |image tensor - reference tensor| = ${d.max}`);
    });
  }
});
