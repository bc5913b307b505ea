import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { FusionEngine, fuseConstantGradients, fusionColumns } from '../src/engine/fusion.js';
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
  const engine = new FusionEngine(ort, { threads: 2 });
  after(() => engine.dispose());

  it('Gram path (gradients vary in space), 600 channels', async () => {
    const data = scales(600, false);
    const fast = normaliseFused(await engine.fuseSums(data, 224), data.length, 224);
    const reference = fuseScales(data, 224);
    const d = difference(fast.map, reference.map);
    assert.ok(d.max < 1e-5, `max diff ${d.max}`);
    assert.equal(fast.empty, reference.empty);
  });

  it("Gram path in blocks of output columns (VGG-16's stride-16 sides for 224..924 px: blocks of 46 columns)", async () => {
    const data = scales(300, false, [14, 20, 26, 32, 39, 45, 51, 57]);
    const fast = normaliseFused(await engine.fuseSums(data, 224), data.length, 224);
    const reference = fuseScales(data, 224);
    const d = difference(fast.map, reference.map);
    assert.ok(d.max < 1e-5, `max diff ${d.max}`);
  });

  it('Gram path where the stacked rows outnumber the channels (a shallow layer: the Gram block bounds the columns)', async () => {
    const data = scales(6, false, [56, 81, 106]);
    assert.equal(fusionColumns(243, 6, 224), Math.floor(5_000_000 / 243 ** 2));
    const fast = normaliseFused(await engine.fuseSums(data, 224), data.length, 224);
    const reference = fuseScales(data, 224);
    const d = difference(fast.map, reference.map);
    assert.ok(d.max < 1e-5, `max diff ${d.max}`);
  });

  it("block sizes: each side's stack and the Gram block within budget, at least one column", () => {
    assert.equal(fusionColumns(284, 512, 224), 27); // VGG-16 features.29, 8 scales: the stacks bound it
    assert.equal(fusionColumns(140, 1024, 224), 27); // DenseNet-121 features
    assert.equal(fusionColumns(4592, 64, 224), 1); // VGG-16 features.3: one column, its Gram matrix alone is 84 MB
    assert.equal(fusionColumns(10, 8, 224), 224);
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
