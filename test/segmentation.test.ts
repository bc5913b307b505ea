import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GradientSession } from '../src/engine/gradient-session.js';
import { predictedMask, type RegionMask, type RegionTarget, targetScore } from '../src/engine/scores.js';
import { CamerasError } from '../src/errors.js';
import { Explainer } from '../src/explainer.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';
import { cancellation, float32Bound } from './parity.js';

// A small seeded segmenter with two dense outputs (`out`, `aux`: [1, 4, h, w]) and its reference maps, computed in
// float64 by autograd as pytorch-grad-cam's SemanticSegmentationTarget defines the target, (output[k] * mask).sum(),
// and by the CAMERAS authors' algorithm with that score in place of the logit (scripts/make_segmentation_fixture.py).
const folder = resolve(FIXTURES, 'segmentation');
interface Case {
  method: string;
  output: string;
  mask: boolean;
  raw?: string;
  map?: string;
  float32?: string;
  resolutions?: number[];
  area?: number;
}
const fixture = JSON.parse(readFileSync(resolve(folder, 'cases.json'), 'utf8')) as {
  class: number;
  layer: string;
  mask: { rows: [number, number]; columns: [number, number]; size: number };
  cases: Case[];
};
const input = npy(resolve(folder, 'input.npy'));
const k = fixture.class;

/** The fixture's mask: a rectangle of the image, non-zero inside. */
function rectangle(): RegionMask {
  const { rows, columns, size } = fixture.mask;
  const data = new Uint8Array(size * size);
  for (let y = rows[0]; y < rows[1]; y++) for (let x = columns[0]; x < columns[1]; x++) data[y * size + x] = 255;
  return { data, width: size, height: size };
}

/** A case's region: class k over its predicted pixels, or over the fixture's mask. */
const target = (c: Case): RegionTarget => (c.mask ? { segment: k, mask: rectangle() } : { segment: k });

describe('a region of a dense output (segmentation), against autograd in float64', () => {
  const model = bytes(resolve(folder, 'tiny_seg.onnx'));
  const graph = OnnxGraph.fromBytes(model);
  const explainer = Explainer.create(ort, { model, layer: fixture.layer, threads: 2 });
  after(async () => (await explainer).dispose());

  it('the profile lists both outputs and explains the first', async () => {
    const e = await explainer;
    assert.deepEqual(
      e.profile.outputs.map((o) => o.name),
      ['out', 'aux'],
    );
    assert.equal(e.profile.output, 'out');
    assert.equal(e.classCount, 4);
  });

  for (const c of fixture.cases.filter((c) => c.method === 'gradcam')) {
    it(`Grad-CAM of class ${k}'s scores over ${c.mask ? 'a given mask' : 'its predicted pixels'} of '${c.output}'`, async () => {
      const e = await explainer;
      const result = await e.explain(input, {
        method: 'gradcam',
        target: target(c),
        ...(c.output === 'out' ? {} : { output: c.output }),
        raw: true,
      });
      const expected = npy(resolve(folder, c.raw as string)).data;
      const d = difference(result.raw?.data as Float64Array, expected);
      // float32 against float64 through four small layers: measured 2e-7 of the map's scale.
      assert.ok(d.max <= 1e-5 * d.scale, `raw map differs by ${d.max} (scale ${d.scale})`);
      assert.equal(result.classIndex, k);
      assert.equal(result.output, c.output);
      assert.equal(result.target, c.mask ? `segment:${k}:mask` : `segment:${k}`);
      assert.equal(result.classPerResolution, undefined, 'no classifier, no class per resolution');
      assert.equal(result.classProbability, undefined);
    });
  }

  for (const c of fixture.cases.filter((c) => c.method === 'cameras')) {
    it(`CAMERAS of class ${k}'s region (${c.mask ? 'given mask, resized to each scale' : 'predicted at each scale'})`, async () => {
      const e = await explainer;
      const result = await e.explain(input, { target: target(c), resolutions: c.resolutions });
      const exact = npy(resolve(folder, c.map as string)).data;
      const ours = difference(result.map, exact);
      const pytorch = difference(npy(resolve(folder, c.float32 as string)).data, exact);
      // The classifier suite's bound (test/parity.ts): float32 on any kernel, from the map's cancellation kappa.
      const session = await GradientSession.create(ort, graph, [e.layer.tensor], { threads: 2, output: c.output });
      const kappa = await cancellation(session, input, k, target(c), result.usedResolutions);
      await session.dispose();
      const bound = float32Bound(kappa, pytorch.max);
      assert.ok(
        ours.max <= bound,
        `map differs from the float64 reference by ${ours.max}; bound ${bound}, PyTorch float32's ${pytorch.max}`,
      );
      assert.deepEqual(result.usedResolutions, c.resolutions, 'a region keeps every scale');
    });
  }

  it("the region's score is class k's scores summed over its pixels, as masking methods score it", async () => {
    const e = await explainer;
    const [output] = await (async () => {
      const session = await ort.InferenceSession.create(bytes(resolve(folder, 'tiny_seg.onnx')));
      const out = await session.run({ input: new ort.Tensor('float32', input.data, input.shape) });
      await session.release();
      return [{ data: out.out?.data as Float32Array, shape: [...(out.out?.dims ?? [])] }];
    })();
    const [, classes, h, w] = output.shape as [number, number, number, number];
    let sum = 0;
    let area = 0;
    for (let p = 0; p < h * w; p++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if ((output.data[c * h * w + p] as number) > (output.data[best * h * w + p] as number)) best = c;
      if (best === k) {
        sum += output.data[k * h * w + p] as number;
        area++;
      }
    }
    assert.equal(area, fixture.cases[0]?.area, "the predicted pixels are PyTorch's");
    assert.equal([...predictedMask(output, k)].filter((v) => v === 1).length, area);
    assert.ok(Math.abs(targetScore(output, { segment: k }, k) - sum) < 1e-4 * Math.abs(sum));
    // Score-CAM and Ablation-CAM run on the region too (their copies scored against the clean prediction).
    for (const method of ['scorecam', 'ablationcam']) {
      const result = await e.explain(input, { method, target: { segment: k } });
      assert.ok(!result.empty && result.map.some((v) => v > 0 && v < 1), `${method} gives a map`);
    }
  });

  it('refuses what does not fit the output, in one line naming the fix', async () => {
    const e = await explainer;
    await assert.rejects(e.explain(input, { method: 'gradcam' }), (error: Error) => {
      assert.ok(error instanceof CamerasError);
      assert.match(error.message, /output 'out' is a dense \[batch, K, H, W\] map; explain a region of it: target segment:<class>/);
      return true;
    });
    await assert.rejects(e.explain(input, { target: { segment: 9 } }), /class 9 is out of range: the model has 4 classes/);
    await assert.rejects(e.explain(input, { target: { segment: k }, classIndex: k + 1 }), /the region is of class 0 but 'classIndex' is 1/);
    await assert.rejects(e.explain(input, { target: { segment: k }, output: 'nothing' }), /no output 'nothing'; its outputs: out, aux/);
    await assert.rejects(
      e.explain(input, { target: { segment: k, mask: { data: [1, 0], width: 3, height: 1 } } }),
      /mask has 2 values for 3 x 1 pixels/,
    );
    const classifier = await Explainer.create(ort, { model: bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')), threads: 2 });
    try {
      await assert.rejects(
        classifier.explain(npy(resolve(FIXTURES, 'mini_resnet/dog.input.npy')), { target: { segment: 1 } }),
        /output 'logits' is a classifier's \[batch, classes\]; a region target \(segment\) needs a dense \[batch, K, H, W\] output/,
      );
    } finally {
      await classifier.dispose();
    }
  });
});
