import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { FloatArray } from '../src/io/npy.js';
import { densities, maskedInputs } from '../src/metrics/density.js';
import { blurChannels, causalMetric, riseAuc, riseKernel, saliencyOrder } from '../src/metrics/insertion-deletion.js';
import { PointingGameScore, pointingHit, pointOf } from '../src/metrics/pointing-game.js';
import { bytes, difference, FIXTURES, npy } from './helpers.js';

const TORCH = resolve(FIXTURES, 'torch');

describe('pointing game (TorchRay)', () => {
  it('points at the first maximum of the map upsampled to the image', () => {
    // Two equal maxima: the first in row-major order wins.
    assert.deepEqual(pointOf([0, 1, 0, 1], 2, 2, 2, 2), [1, 0]);
    // A 2x2 map whose bottom-right cell is hottest, upsampled to 8x8: the point lies in the bottom-right quarter.
    const [x, y] = pointOf([0, 0, 0, 1], 2, 2, 8, 8);
    assert.ok(x >= 4 && y >= 4, `${x}, ${y}`);
  });

  it('hits when a mask pixel lies strictly within the tolerance; an empty mask is a miss', () => {
    const mask = { data: new Uint8Array(40 * 40), width: 40, height: 40 };
    mask.data[20 * 40 + 35] = 1; // (35, 20)
    assert.equal(pointingHit(mask, [21, 20], 15), 1); // 14 px away
    assert.equal(pointingHit(mask, [20, 20], 15), -1); // exactly 15 px: TorchRay's test is strict
    assert.equal(pointingHit(mask, [20, 20], 16), 1);
    assert.equal(pointingHit({ data: new Uint8Array(4), width: 2, height: 2 }, [0, 0]), -1);
  });

  it('averages per-class accuracies over every class, an untried class counting 0, skips not counted', () => {
    const score = new PointingGameScore(['cat', 'dog', 'cow']);
    score.add('cat', 1);
    score.add('cat', -1);
    score.add('dog', 1);
    score.add('dog', 0);
    assert.deepEqual(score.perClass(), { cat: 0.5, dog: 1, cow: 0 });
    assert.equal(score.mean(), 0.5);
  });
});

describe("the paper's densities", () => {
  it('rho+ = P(I Psi) / mean(Psi), rho- = P(I (1 - Psi)) / mean(1 - Psi)', () => {
    const map = [1, 0, 0, 0.5]; // mean 0.375
    const d = densities(0.6, 0.3, map);
    assert.ok(Math.abs(d.positive - 0.6 / 0.375) < 1e-12);
    assert.ok(Math.abs(d.negative - 0.3 / 0.625) < 1e-12);
    const { kept, removed } = maskedInputs(Float32Array.from([2, 2, 2, 2, 4, 4, 4, 4]), 2, map);
    assert.deepEqual([...kept], [2, 0, 0, 1, 4, 0, 0, 2]);
    assert.deepEqual([...removed], [0, 2, 2, 1, 0, 4, 4, 2]);
  });
});

describe('insertion and deletion (RISE)', () => {
  it("blurs with RISE's kernel: scipy's gaussian_filter of a delta, reflected", () => {
    const k = riseKernel(11, 5);
    // scipy.ndimage.gaussian_filter(delta 11x11, 5) in float32, first row and centre.
    const scipy = [0.007736635394394398, 0.007819137535989285, 0.00795794278383255, 0.008108959533274174];
    assert.ok(difference(k.subarray(0, 4), scipy).max < 1e-9);
    assert.ok(Math.abs((k[60] as number) - 0.008832628) < 1e-9);
    const input = npy(resolve(TORCH, 'zoo.48.input.npy'));
    const d = difference(blurChannels(input, k, 11), npy(resolve(TORCH, 'rise.48.blurred.npy')).data);
    assert.ok(d.max <= 1e-5 * d.scale, `blur differs by ${d.max}`);
  });

  it('orders pixels by decreasing saliency, the later pixel first on ties; the AUC is the trapezoid rule', () => {
    assert.deepEqual([...saliencyOrder([0.2, 0.9, 0.2, 0.5])], [1, 3, 2, 0]);
    assert.equal(riseAuc([1, 0.5, 0]), 0.5);
    assert.equal(riseAuc([1, 1]), 1);
  });

  describe("equals RISE's CausalMetric on a torch-exported model (scripts/make_fixtures.py)", () => {
    const session = ort.InferenceSession.create(bytes(resolve(TORCH, 'zoo.onnx')));
    after(async () => (await session).release());
    const forward = async (inputs: FloatArray[]) => {
      const s = await session;
      const out: Float32Array[] = [];
      for (const x of inputs) out.push((await s.run({ input: new ort.Tensor('float32', x.data, x.shape) })).logits?.data as Float32Array);
      return out;
    };
    const input = npy(resolve(TORCH, 'zoo.48.input.npy'));
    const map = npy(resolve(TORCH, 'rise.48.map.npy')).data;
    for (const [mode, file] of [
      ['deletion', 'del'],
      ['insertion', 'ins'],
    ] as const) {
      it(mode, async () => {
        const curve = await causalMetric(forward, input, map, mode, { step: 10, batch: 7 });
        const expected = npy(resolve(TORCH, `rise.48.${file}.scores.npy`)).data;
        assert.equal(curve.scores.length, expected.length);
        const d = difference(curve.scores, expected);
        assert.ok(d.max <= 1e-5, `scores differ by ${d.max}`);
        assert.ok(Math.abs(curve.auc - riseAuc(expected)) <= 1e-5);
      });
    }
  });
});
