import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { parseLayerView } from '../src/engine/layer-view.js';
import { Explainer } from '../src/explainer.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';
import { difference } from './helpers.js';

type Layout = 'nchw' | 'nhwc' | 'tokens';

/**
 * One network in three layouts: a 4x4-patch convolution and a ReLU, then global average pooling and a linear head.
 * `nhwc` lays the ReLU's output channels last in between (the layer is that tensor); `tokens` lays it out as a
 * transformer's sequence, a class token (the tokens' mean) first, and the head pools the patch tokens only. The
 * three compute the same logits, so a map read through the layer view must equal the NCHW layer's.
 */
function network(layout: Layout): { bytes: Uint8Array; layer: string } {
  const g = OnnxGraph.empty('view', 13);
  g.addInput('input', DataType.FLOAT, ['batch', 3, 'height', 'width']);
  const weights = Float32Array.from({ length: 4 * 3 * 4 * 4 }, (_, i) => Math.sin(i * 1.7) * 0.3);
  const bias = Float32Array.from([0.05, -0.02, 0.1, 0]);
  const conv = g.addNode('Conv', ['input', g.addConstant('w', weights, [4, 3, 4, 4]), g.addConstant('b', bias, [4])], {
    kernel_shape: [4, 4],
    strides: [4, 4],
  })[0] as string;
  const act = g.addNode('Relu', [conv])[0] as string;
  let pooled: string;
  let layer = act;
  if (layout === 'nchw') pooled = g.addNode('GlobalAveragePool', [act])[0] as string;
  else if (layout === 'nhwc') {
    layer = g.addNode('Transpose', [act], { perm: [0, 2, 3, 1] })[0] as string;
    const back = g.addNode('Transpose', [layer], { perm: [0, 3, 1, 2] })[0] as string;
    pooled = g.addNode('GlobalAveragePool', [back])[0] as string;
  } else {
    const flat = g.addNode('Reshape', [act, g.addConstant('shape', [0, 4, -1], [3], 'int64')])[0] as string;
    const tokens = g.addNode('Transpose', [flat], { perm: [0, 2, 1] })[0] as string;
    const cls = g.addNode('ReduceMean', [tokens], { axes: [1], keepdims: 1 })[0] as string;
    layer = g.addNode('Concat', [cls, tokens], { axis: 1 })[0] as string;
    const patches = g.addNode('Slice', [
      layer,
      g.addConstant('starts', [1], [1], 'int64'),
      g.addConstant('ends', [2 ** 31 - 1], [1], 'int64'),
      g.addConstant('axes', [1], [1], 'int64'),
    ])[0] as string;
    pooled = g.addNode('ReduceMean', [patches], { axes: [1], keepdims: 0 })[0] as string;
  }
  const features = layout === 'tokens' ? pooled : (g.addNode('Flatten', [pooled], { axis: 1 })[0] as string);
  const fc = Float32Array.from({ length: 3 * 4 }, (_, i) => Math.cos(i * 0.9));
  g.addNode(
    'Gemm',
    [features, g.addConstant('fc', fc, [3, 4]), g.addConstant('fcb', [0.1, 0, -0.1], [3])],
    { transB: 1 },
    { outputs: ['logits'] },
  );
  g.addOutput('logits', DataType.FLOAT, ['batch', 3]);
  return { bytes: g.toBytes(), layer };
}

const input = {
  data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37) + 0.3 * Math.cos(i * 0.011)),
  shape: [1, 3, 64, 64],
};

describe('layer views: channels-last and token layers read as [N, C, H, W]', () => {
  // Relative bounds: the layouts pool in other orders, so float32 rounding differs; Ablation-CAM's weights are the
  // relative drops (S - S_k) / S, a cancelling difference (measured 6.5e-6 there; the others are equal to the bit here).
  const cases: [string, Record<string, unknown>, number][] = [
    ['gradcam', { method: 'gradcam', classIndex: 1, raw: true }, 1e-6],
    ['hirescam', { method: 'hirescam', classIndex: 2, raw: true }, 1e-6],
    ['ablationcam (the view undone for the head)', { method: 'ablationcam', classIndex: 1, raw: true }, 3e-5],
    ['cameras', { classIndex: 1, resolutions: [64, 96, 128], raw: true }, 1e-6],
  ];
  for (const layout of ['nhwc', 'tokens'] as const) {
    for (const [name, options, bound] of cases) {
      it(`${layout}: ${name} equals the NCHW layer's map (view detected from the graph)`, async () => {
        const reference = network('nchw');
        const viewed = network(layout);
        const a = await Explainer.create(ort, { model: reference.bytes, layer: reference.layer, threads: 2 });
        const b = await Explainer.create(ort, { model: viewed.bytes, layer: viewed.layer, threads: 2 });
        try {
          const expected = await a.explain(input, options);
          const got = await b.explain(input, options);
          const d = difference(got.raw?.data as Float64Array, expected.raw?.data as Float64Array);
          assert.ok(d.max <= bound * d.scale, `raw maps differ by ${d.max} (scale ${d.scale})`);
          assert.deepEqual([got.height, got.width], [expected.height, expected.width]);
        } finally {
          await a.dispose();
          await b.dispose();
        }
      });
    }
  }

  it('a view given by the caller wins over detection, and a wrong one fails in one line', async () => {
    const viewed = network('tokens');
    const given = await Explainer.create(ort, {
      model: viewed.bytes,
      layer: viewed.layer,
      threads: 2,
      profile: { layerView: parseLayerView('tokens:1') },
    });
    const wrong = await Explainer.create(ort, {
      model: viewed.bytes,
      layer: viewed.layer,
      threads: 2,
      profile: { layerView: { kind: 'nhwc' } },
    });
    try {
      assert.equal((await given.explain(input, { method: 'gradcam', classIndex: 1 })).width, 64);
      await assert.rejects(wrong.explain(input, { method: 'gradcam', classIndex: 1 }), /not channels-last \[N, H, W, C\]/);
      assert.throws(() => parseLayerView('rows'), /unknown layer view 'rows'; use nchw, nhwc, tokens or tokens:<prefix tokens>/);
    } finally {
      await given.dispose();
      await wrong.dispose();
    }
  });
});
