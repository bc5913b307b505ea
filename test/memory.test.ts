import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Explainer } from '../src/explainer.js';
import { bytes, FIXTURES, npy, ROOT } from './helpers.js';

const gc = (globalThis as { gc?: () => void }).gc;

describe('memory', () => {
  it('does not grow over 50 repeated explains', { skip: gc ? false : 'run node with --expose-gc' }, async () => {
    const explainer = await Explainer.create(ort, {
      model: bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')),
      layer: 'layer4',
      threads: 2,
    });
    const input = npy(resolve(FIXTURES, 'mini_resnet/dog.input.npy'));
    const explainOnce = () => explainer.explain(input, { resolutions: [224, 324, 424, 524] });
    // Warm up: ONNX Runtime's arena and JIT-compiled code settle over the first runs (measured: RSS plateaus by
    // about the 50th explain, 80 MiB above the first, and stays flat over the next 150).
    for (let i = 0; i < 60; i++) await explainOnce();
    gc?.();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 50; i++) await explainOnce();
    gc?.();
    const after = process.memoryUsage().rss;
    await explainer.dispose();
    const grownMiB = (after - before) / 2 ** 20;
    // One explain holds about 10 MiB of tensors; a leak of that per run would add 500 MiB.
    assert.ok(grownMiB < 40, `RSS grew by ${grownMiB.toFixed(1)} MiB over 50 explains`);
  });
});
