import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { FusionEngine, fuseConstantGradients } from '../src/engine/fusion.js';
import { fuseScales, normaliseFused } from '../src/methods/cameras.js';
import { difference } from './helpers.js';

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

/** Activations and gradients at the sizes a 32x-downsampling network gives for 224..924 px (or other sides). */
function scales(channels: number, constantGradients: boolean, sides = [7, 11, 14, 17, 29]) {
  const next = random(channels + (constantGradients ? 1 : 0));
  return sides.map((side) => {
    const count = channels * side * side;
    const activation = Float32Array.from({ length: count }, () => Math.max(0, next() * 4));
    const gradient = Float32Array.from({ length: count }, (_, i) =>
      constantGradients ? Math.sin(Math.floor(i / (side * side)) * 1.7) * 1e-3 : next() * 1e-3,
    );
    return {
      activation: { data: activation, shape: [1, channels, side, side] },
      gradient: { data: gradient, shape: [1, channels, side, side] },
    };
  });
}

// The fast fusion must give the map the paper's resize-then-multiply gives (the JS reference).
describe('fast fusion equals the reference fusion', () => {
  const engine = new FusionEngine(ort, 2);
  after(() => engine.dispose());

  it('Gram path (gradients vary in space), 600 channels', async () => {
    const data = scales(600, false);
    const fast = normaliseFused(await engine.fuseSums(data, 224), data.length, 224);
    const reference = fuseScales(data, 224);
    const d = difference(fast.map, reference.map);
    assert.ok(d.max < 1e-5, `max diff ${d.max}`);
    assert.equal(fast.empty, reference.empty);
  });

  it("Gram path in blocks of output columns (VGG-16's stride-16 sides for 224..924 px: 5 blocks of 46)", async () => {
    const data = scales(300, false, [14, 20, 26, 32, 39, 45, 51, 57]);
    const fast = normaliseFused(await engine.fuseSums(data, 224), data.length, 224);
    const reference = fuseScales(data, 224);
    const d = difference(fast.map, reference.map);
    assert.ok(d.max < 1e-5, `max diff ${d.max}`);
  });

  it('constant-gradient path (a global-pooling head)', async () => {
    const data = scales(64, true);
    assert.ok(fuseConstantGradients(data, 224), 'detected');
    const fast = normaliseFused(await engine.fuseSums(data, 224), data.length, 224);
    const reference = fuseScales(data, 224);
    const d = difference(fast.map, reference.map);
    assert.ok(d.max < 1e-5, `max diff ${d.max}`);
  });

  it('falls back to the Gram path when one gradient plane is not constant', () => {
    const data = scales(8, true);
    const gradient = data[2]?.gradient.data as Float32Array;
    gradient[5] = (gradient[5] as number) + 1e-6;
    assert.equal(fuseConstantGradients(data, 224), undefined);
  });
});
