import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Explainer } from '../src/explainer.js';
import { bytes, FIXTURES, npy, ROOT } from './helpers.js';

describe('input-gradient methods and NormGrad', () => {
  const explainer = Explainer.create(ort, { model: bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')), layer: 'layer4', threads: 2 });
  const input = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
  after(async () => (await explainer).dispose());

  for (const cls of [4, 5]) {
    it(`Integrated Gradients is complete: attributions sum to f(x) - f(0) within 1% (class ${cls})`, async () => {
      const result = await (await explainer).explain(input, { method: 'integrated_gradients', classIndex: cls });
      assert.ok(result.completenessError !== undefined);
      assert.ok(result.completenessError < 0.01, `completeness error ${result.completenessError}`);
      assert.equal(result.empty, false);
    });
  }

  it('SmoothGrad is deterministic under a seed, and the seed matters', async () => {
    const e = await explainer;
    const a = await e.explain(input, { method: 'smoothgrad', samples: 6, seed: 7 });
    const b = await e.explain(input, { method: 'smoothgrad', samples: 6, seed: 7 });
    const c = await e.explain(input, { method: 'smoothgrad', samples: 6, seed: 8 });
    assert.deepEqual([...a.map], [...b.map]);
    assert.notDeepEqual([...a.map], [...c.map]);
  });

  for (const method of ['gradient', 'gradient_x_input', 'normgrad'] as const) {
    it(`${method} gives a non-uniform map at the input's size`, async () => {
      const result = await (await explainer).explain(input, { method, classIndex: 5 });
      assert.equal(result.method, method);
      assert.deepEqual([result.width, result.height], [224, 224]);
      assert.equal(result.empty, false);
      // Scaled to [0, 1] (the CAM methods divide by 1e-7 + max, as pytorch-grad-cam does).
      assert.ok(Math.max(...result.map) > 0.999 && Math.min(...result.map) === 0);
    });
  }
});
