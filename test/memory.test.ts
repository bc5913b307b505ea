import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { estimatePeakBytes } from '../src/engine/memory.js';
import { Explainer } from '../src/explainer.js';
import { OnnxGraph } from '../src/onnx/graph.js';
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

  it("estimates a run's peak above what the run takes, and not far above (mini_resnet, one 2048 px scale)", async () => {
    // A fresh process, so its peak RSS is this run's alone.
    const script = `const { Explainer } = await import(${JSON.stringify(resolve(ROOT, 'dist/src/index.js'))});
      const ort = await import('onnxruntime-node');
      const { readFileSync } = await import('node:fs');
      const e = await Explainer.create(ort, { model: new Uint8Array(readFileSync(${JSON.stringify(resolve(ROOT, 'assets/models/mini_resnet.onnx'))})), layer: 'layer3', threads: 2 });
      const x = { data: new Float32Array(3 * 224 * 224).fill(0.5), shape: [1, 3, 224, 224] };
      await e.explain(x, { classIndex: 3, resolutions: [2048] });
      process.stdout.write(String(process.resourceUsage().maxRSS * 1024));`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: ROOT });
    assert.equal(run.status, 0, run.stderr);
    const peak = Number(run.stdout);
    const estimate = estimatePeakBytes(OnnxGraph.fromBytes(bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx'))), {
      channels: 3,
      size: 2048,
      mapSize: 2048,
    });
    assert.ok(estimate >= peak && estimate <= 3 * peak, `estimate ${(estimate / 1e9).toFixed(2)} GB, peak ${(peak / 1e9).toFixed(2)} GB`);
  });

  it("sizes a ViT's attention maps before the run (3137 tokens at 896 px): the estimate is above the peak and not far above; a budget it would break refuses that scale", async () => {
    const vit = resolve(FIXTURES, 'transformers/vit.onnx');
    const script = `const { Explainer } = await import(${JSON.stringify(resolve(ROOT, 'dist/src/index.js'))});
      const ort = await import('onnxruntime-node');
      const { readFileSync } = await import('node:fs');
      const e = await Explainer.create(ort, { model: new Uint8Array(readFileSync(${JSON.stringify(vit)})), threads: 2 });
      const x = { data: new Float32Array(3 * 224 * 224).fill(0.5), shape: [1, 3, 224, 224] };
      await e.explain(x, { classIndex: 3, resolutions: [896] });
      process.stdout.write(String(process.resourceUsage().maxRSS * 1024));`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: ROOT });
    assert.equal(run.status, 0, run.stderr);
    const peak = Number(run.stdout);
    const graph = OnnxGraph.fromBytes(bytes(vit));
    const at = (size: number) => estimatePeakBytes(graph, { channels: 3, size, mapSize: 896 });
    // Four heads' 3137 x 3137 maps are 157 MB each: the shape arithmetic that makes them is followed, not skipped.
    assert.ok(
      at(896) - at(224) > 0.22 * 2 * 157e6,
      `estimate ${(at(224) / 1e9).toFixed(2)} GB at 224 px, ${(at(896) / 1e9).toFixed(2)} GB at 896 px`,
    );
    assert.ok(at(896) >= peak && at(896) <= 3 * peak, `estimate ${(at(896) / 1e9).toFixed(2)} GB, peak ${(peak / 1e9).toFixed(2)} GB`);
    const budget = (estimatePeakBytes(graph, { channels: 3, size: 512, mapSize: 224 }) + at(896)) / 2;
    const explainer = await Explainer.create(ort, { model: bytes(vit), threads: 2, memoryBudget: budget });
    try {
      const input = npy(resolve(FIXTURES, 'mini_resnet/dog.input.npy'));
      assert.deepEqual((await explainer.explain(input, { resolutions: [224, 512] })).usedResolutions?.length, 2);
      await assert.rejects(
        explainer.explain(input, { resolutions: [224, 896] }),
        /a pass at 896 px needs about [\d.]+ GB by our estimate, over the memory budget/,
      );
    } finally {
      await explainer.dispose();
    }
  });
});
