import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Explainer } from '../src/explainer.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';
import { bytes, FIXTURES, npy, ROOT } from './helpers.js';

/** A classifier whose graph bakes in batch 1 (Reshape to [1, -1]), as some exporters write it. */
function batchOneModel(): Uint8Array {
  const g = OnnxGraph.empty('b1', 13);
  g.addInput('input', DataType.FLOAT, [1, 3, 'h', 'w']);
  const w = g.addConstant(
    'w',
    Float32Array.from({ length: 8 * 27 }, (_, i) => Math.sin(i)),
    [8, 3, 3, 3],
  );
  g.addNode('Conv', ['input', w], { pads: [1, 1, 1, 1], strides: [2, 2] }, { outputs: ['features'], name: '/features/Conv' });
  const [relu] = g.addNode('Relu', ['features'], {}, { name: '/relu/Relu' });
  const [pooled] = g.addNode('GlobalAveragePool', [relu as string]);
  const [flat] = g.addNode('Reshape', [pooled as string, g.addConstant('shape', [1, -1], [2], 'int64')]);
  const fc = g.addConstant(
    'fc',
    Float32Array.from({ length: 4 * 8 }, (_, i) => Math.cos(i)),
    [4, 8],
  );
  g.addNode('Gemm', [flat as string, fc], { transB: 1 }, { outputs: ['logits'] });
  g.addOutput('logits');
  return g.toBytes();
}

describe('explaining many images', () => {
  const inputs = ['cat_dog', 'dog', 'cat_dog'].map((name) => npy(resolve(FIXTURES, `mini_resnet/${name}.input.npy`)));
  const options = { resolutions: [224, 352, 480] };

  it('stacked per scale, gives each image the map it gets alone', async () => {
    const explainer = await Explainer.create(ort, { model: bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')), layer: 'layer3' });
    try {
      const together = await explainer.explainBatch(inputs, { ...options, batch: true });
      for (const [i, input] of inputs.entries()) {
        const alone = await explainer.explain(input, options);
        assert.deepEqual(together[i]?.classPerResolution, alone.classPerResolution);
        assert.deepEqual([...(together[i]?.map ?? [])], [...alone.map]);
      }
    } finally {
      await explainer.dispose();
    }
  });

  it('falls back to one image per call when the graph bakes in batch 1', async () => {
    const explainer = await Explainer.create(ort, { model: batchOneModel(), layer: 'features' });
    try {
      const small = inputs.map((x) => ({ data: x.data.subarray(0, 3 * 64 * 64), shape: [1, 3, 64, 64] }));
      const together = await explainer.explainBatch(small, { resolutions: [64, 96], batch: true });
      const alone = await explainer.explain(small[1] as (typeof small)[number], { resolutions: [64, 96] });
      assert.deepEqual([...(together[1]?.map ?? [])], [...alone.map]);
    } finally {
      await explainer.dispose();
    }
  });
});
