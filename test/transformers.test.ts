import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GradientSession } from '../src/engine/gradient-session.js';
import { resizeInput } from '../src/engine/resize.js';
import { Explainer } from '../src/explainer.js';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import type { FloatArray } from '../src/io/npy.js';
import { resolveProfile } from '../src/models/profile.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { onnx } from '../src/onnx/proto.js';
import { bytes, difference, FIXTURES, npy, ROOT, scaleCam } from './helpers.js';
import { cancellation, float32Bound, type ReferenceCase } from './parity.js';

/**
 * Vision Transformers as torch.onnx.export writes them (test/fixtures/transformers, scripts/make_transformer_fixture.py):
 * torchvision's ViT (patch 16) and Swin (patch 4, windows 7), small and seeded. Their logits against PyTorch's at the
 * traced size and another, every CAM method against pytorch-grad-cam with its reshape transforms, and CAMERAS against
 * the authors' algorithm run in PyTorch float64, the ViT's position embedding resampled per scale by torchvision.
 */
const FOLDER = resolve(FIXTURES, 'transformers');
const INPUTS = resolve(FIXTURES, 'mini_resnet');
const DOG = resolve(FIXTURES, 'images/dog.jpg');
interface Fixture {
  logits: Record<string, string>;
  baselines: { model: string; input: string; layer: string; class: number; method: string; map: string; float64: string }[];
  cases: (ReferenceCase & { model: string; float32: string })[];
  attention: { input: string; class: number; method: string; options: Record<string, unknown>; map: string; float64: string }[];
}
const fixture = JSON.parse(readFileSync(resolve(FOLDER, 'cases.json'), 'utf8')) as Fixture;
const DEFAULTS: Record<string, { layer: string; view: string; patch: number; resolutions: number[] }> = {
  vit: { layer: 'encoder.layers.encoder_layer_1.ln_1', view: 'tokens', patch: 16, resolutions: [224, 320, 416, 512, 608, 704, 800, 896] },
  swin: { layer: 'features.3.1.norm1', view: 'nhwc', patch: 4, resolutions: [224, 324, 424, 524, 624, 724, 824, 924] },
};

/** The bound on max |ours - pytorch-grad-cam| per method on these maps (the CNN suite's, test/baselines.test.ts). */
const BOUNDS: Record<string, number> = {
  gradcam: 1.5e-5,
  gradcampp: 1.1e-5,
  hirescam: 1.4e-5,
  xgradcam: 2e-5,
  layercam: 1.5e-5,
  eigencam: 7.5e-6,
  scorecam: 1.4e-5,
};

const explainers = new Map<string, Promise<Explainer>>();
function explainer(model: string): Promise<Explainer> {
  let found = explainers.get(model);
  if (!found) {
    found = Explainer.create(ort, { model: new Uint8Array(readFileSync(resolve(FOLDER, `${model}.onnx`))), threads: 2 });
    explainers.set(model, found);
  }
  return found;
}
after(async () => {
  for (const e of explainers.values()) await (await e).dispose();
});

describe('Vision Transformers as exported (ViT and Swin, torchvision)', () => {
  for (const [model, expected] of Object.entries(DEFAULTS))
    it(`${model}: the default layer is the last block's first norm, read as ${expected.view}; scales are whole patch grids`, async () => {
      const e = await explainer(model);
      assert.equal(e.layer.name, expected.layer);
      assert.equal(e.profile.patch, expected.patch);
      assert.deepEqual(e.profile.resolutions, expected.resolutions);
      const result = await e.explain(npy(resolve(INPUTS, 'cat_dog.input.npy')), { method: 'gradcam', raw: true });
      assert.equal(e.profile.layerView?.kind, expected.view);
      assert.ok(!result.empty && result.map.some((v) => v > 0 && v < 1), 'a map with structure');
    });

  for (const model of ['vit', 'swin'])
    it(`${model}: ONNX Runtime computes PyTorch's logits at the traced 224 px and at 320 px`, async () => {
      const e = await explainer(model);
      const input = npy(resolve(INPUTS, 'cat_dog.input.npy'));
      for (const size of [224, 320]) {
        const ours = await e.logits(input, size);
        const theirs = npy(resolve(FOLDER, fixture.logits[`${model}.${size}`] as string)).data;
        const d = difference(ours, theirs);
        assert.ok(d.max <= 1e-4 * Math.max(1, d.scale), `${size} px: max |ours - PyTorch| = ${d.max}`);
      }
    });

  it('a Swin export whose window shifts were frozen at its traced size is explained at that size only, and says why', async () => {
    const input = npy(resolve(INPUTS, 'cat_dog.input.npy'));
    // What goes wrong: at 320 px ONNX Runtime runs the graph and answers, but not what the model computes.
    const session = await ort.InferenceSession.create(bytes(resolve(FOLDER, 'swin_baked.onnx')));
    const at320 = await session.run({ input: new ort.Tensor('float32', resizeInput(input, 320).data, [1, 3, 320, 320]) });
    await session.release();
    const wrong = difference(at320.logits?.data as Float32Array, npy(resolve(FOLDER, fixture.logits['swin_baked.320'] as string)).data);
    assert.ok(wrong.max > 1e-2, `the frozen export is off PyTorch at 320 px by ${wrong.max}`);
    const e = await explainer('swin_baked');
    assert.deepEqual(e.profile.frozenShifts, ['features.7.1']);
    assert.deepEqual(e.profile.resolutions, [224], 'one scale by default');
    const right = difference(await e.logits(input), npy(resolve(FOLDER, fixture.logits['swin_baked.224'] as string)).data);
    assert.ok(right.max <= 1e-4, `right at 224 px: ${right.max}`);
    assert.equal((await e.explain(input)).usedResolutions?.length, 1);
    const refusal =
      /computes another function at 320 px than at 224 px: its export froze the window shifts of features\.7\.1 at the traced size .*explain it at 224 px \(--resolutions 224\), or export it once per input size/;
    await assert.rejects(e.explain(input, { resolutions: [224, 320] }), refusal);
    await assert.rejects(e.logits(input, 320), refusal);
    await assert.rejects(e.explain(resizeInput(input, 320), { method: 'gradcam' }), /another function at 320 px/);
  });

  for (const b of fixture.baselines)
    it(`${b.model}: ${b.method} ${b.input.split('.')[0]} class ${b.class} equals pytorch-grad-cam`, async () => {
      const e = await explainer(b.model);
      const result = await e.explain(npy(resolve(INPUTS, b.input)), { method: b.method, classIndex: b.class, raw: true });
      const exact = npy(resolve(FOLDER, b.float64));
      const raw = result.raw as { data: ArrayLike<number>; height: number; width: number };
      assert.deepEqual([raw.height, raw.width], exact.shape.slice(-2), "the layer's grid");
      // Judged against pytorch-grad-cam on the float64 model, with its float32 run's own error beside ours.
      const ours = difference(scaleCam(raw.data), exact.data);
      const pytorch = difference(npy(resolve(FOLDER, b.map)).data, exact.data);
      const bound = Math.max(BOUNDS[b.method] as number, 1.01 * pytorch.max);
      assert.ok(ours.max <= bound, `max |ours - exact| = ${ours.max}; bound ${bound}; pytorch-grad-cam float32's own ${pytorch.max}`);
    });

  for (const c of fixture.cases)
    it(`${c.name}: CAMERAS equals the authors' algorithm (float64) at ${c.resolutions.join(', ')} px`, async () => {
      const e = await explainer(c.model);
      assert.equal(e.layer.name, c.layer);
      const input: FloatArray = npy(resolve(INPUTS, c.input));
      const result = await e.explain(input, { classIndex: c.class, resolutions: c.resolutions });
      assert.deepEqual(result.classPerResolution, c.classPerResolution, 'class per resolution');
      for (const [r, p] of Object.entries(c.probPerResolution))
        assert.ok(Math.abs((result.probPerResolution?.[r] as number) - p) < 1e-5, `probability at ${r} px`);
      const exact = npy(resolve(FOLDER, c.map)).data;
      const ours = difference(result.map, exact);
      const pytorch = difference(npy(resolve(FOLDER, c.float32)).data, exact);
      // The classifier suite's bound (test/parity.ts): float32 on any kernel, from the map's cancellation kappa.
      let kappa = 1;
      if (ours.max > float32Bound(1, pytorch.max)) {
        const session = await GradientSession.create(
          ort,
          OnnxGraph.fromBytes(bytes(resolve(FOLDER, `${c.model}.onnx`))),
          [e.layer.tensor],
          {
            threads: 2,
          },
        );
        kappa = await cancellation(session, input, result.classIndex as number, undefined, result.usedResolutions, e.profile.layerView);
        await session.dispose();
      }
      const bound = float32Bound(kappa, pytorch.max);
      assert.ok(
        ours.max <= bound,
        `max |map - exact| = ${ours.max}; bound ${bound} (kappa ${kappa.toFixed(1)}); PyTorch float32's own ${pytorch.max}`,
      );
    });

  for (const a of fixture.attention)
    it(`vit: ${a.method} ${JSON.stringify(a.options)} on ${a.input.split('.')[0]} equals its authors' code (float64), class ${a.class}`, async () => {
      const e = await explainer('vit');
      const classIndex = a.method === 'chefer' ? a.class : null;
      const result = await e.explain(npy(resolve(INPUTS, a.input)), { method: a.method, classIndex, raw: true, ...a.options });
      assert.equal(result.classIndex, a.class);
      const raw = result.raw as { data: Float64Array; height: number; width: number };
      assert.deepEqual([raw.height, raw.width], [14, 14], 'the patch grid');
      // vit-explain's rollout returns the class token's row over its maximum; Chefer's code the row itself.
      const max = Math.max(...raw.data);
      const grid = a.method === 'rollout' ? raw.data.map((v) => v / max) : raw.data;
      const exact = npy(resolve(FOLDER, a.float64)).data;
      const ours = difference(grid, exact);
      const pytorch = difference(npy(resolve(FOLDER, a.map)).data, exact);
      // Twice the reference's own float32 error, or 1e-5 of the map's range (float32 differs by kernel: AVX2, AVX-512).
      const bound = Math.max(2 * pytorch.max, 1e-5 * Math.max(...exact));
      assert.ok(ours.max <= bound, `max |ours - exact| = ${ours.max}; bound ${bound}; the reference's float32 run's own ${pytorch.max}`);
      assert.equal(result.map.length, 224 * 224);
    });

  it('attention methods refuse windowed attention (Swin) and models without attention, in one line', async () => {
    const input = npy(resolve(INPUTS, 'cat_dog.input.npy'));
    await assert.rejects((await explainer('swin')).explain(input, { method: 'rollout' }), /not global over the image's patches.*Swin/);
    const cnn = await Explainer.create(ort, { model: bytes(resolve(FIXTURES, 'torch', 'dynamic_gap.onnx')), threads: 2 });
    await assert.rejects(cnn.explain(input, { method: 'chefer' }), /has no attention .*use a CAM method or cameras/);
    await cnn.dispose();
  });

  it('a model exported with external data (model.onnx + model.onnx.data) opens by its path and from bytes with its data', async () => {
    // Laid out as ONNX's external data format writes it: each tensor over 1 KB at a 4 KB-aligned offset of one file.
    const model = onnx.ModelProto.decode(bytes(resolve(FOLDER, 'vit.onnx')));
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const tensor of model.graph?.initializer ?? []) {
      const raw = tensor.rawData as Uint8Array | undefined;
      if (!raw || raw.length <= 1024) continue;
      const padding = (4096 - (offset % 4096)) % 4096;
      chunks.push(new Uint8Array(padding), raw);
      offset += padding;
      tensor.externalData = [
        { key: 'location', value: 'vit.onnx.data' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ];
      tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      tensor.rawData = new Uint8Array(0);
      offset += raw.length;
    }
    const folder = mkdtempSync(join(tmpdir(), 'cameras-external-'));
    const cacheBefore = process.env.CAMERAS_CACHE_DIR;
    try {
      const data = Buffer.concat(chunks);
      const outline = onnx.ModelProto.encode(model).finish();
      writeFileSync(join(folder, 'vit.onnx'), outline);
      writeFileSync(join(folder, 'vit.onnx.data'), data);
      assert.ok(outline.length < 100_000, 'the weights are in the data file');
      const input = npy(resolve(INPUTS, 'cat_dog.input.npy'));
      const expected = await (await explainer('vit')).explain(input, { method: 'gradcam' });
      process.env.CAMERAS_CACHE_DIR = join(folder, 'cache');
      const byPath = await createExplainer({ model: join(folder, 'vit.onnx'), threads: 2 });
      assert.deepEqual((await byPath.explain(input, { method: 'gradcam' })).map, expected.map);
      await byPath.dispose();
      // Other weights in the data file are another model, not the cached sessions of the first.
      writeFileSync(
        join(folder, 'vit.onnx.data'),
        data.map((v, i) => (i % 4 === 3 && i > data.length / 2 ? v ^ 1 : v)),
      );
      const changed = await createExplainer({ model: join(folder, 'vit.onnx'), threads: 2 });
      assert.notDeepEqual((await changed.explain(input, { method: 'gradcam' })).map, expected.map);
      await changed.dispose();
      const fromBytes = await Explainer.create(ort, { model: outline, externalData: { 'vit.onnx.data': data }, threads: 2 });
      assert.deepEqual((await fromBytes.explain(input, { method: 'gradcam' })).map, expected.map);
      await fromBytes.dispose();
      await assert.rejects(
        Explainer.create(ort, { model: outline, threads: 2 }),
        /keeps its weights in external data \('vit\.onnx\.data'\); open it by its path .* or give its bytes as externalData/,
      );
      rmSync(join(folder, 'vit.onnx.data'));
      await assert.rejects(
        createExplainer({ model: join(folder, 'vit.onnx'), threads: 2 }),
        /keeps its weights in 'vit\.onnx\.data', which cannot be read \(ENOENT\); keep the data file beside the model/,
      );
    } finally {
      if (cacheBefore === undefined) delete process.env.CAMERAS_CACHE_DIR;
      else process.env.CAMERAS_CACHE_DIR = cacheBefore;
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('the CLI and the jobs run a ViT with no --layer: cameras explain, and cameras batch with an attention method', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'cameras-vit-cli-'));
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
        execFile(
          process.execPath,
          [resolve(ROOT, 'dist/src/cli/main.js'), ...args],
          { env: { ...process.env, CAMERAS_CACHE_DIR: join(folder, 'cache') } },
          (error, stdout, stderr) => done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    try {
      const model = resolve(FOLDER, 'vit.onnx');
      const explained = await run([
        'explain',
        DOG,
        '--model',
        model,
        '--resolutions',
        '224,320',
        '--save-map',
        join(folder, 'map.npy'),
        '--quiet',
      ]);
      assert.equal(explained.code, 0, explained.stderr);
      const batch = await run(['batch', DOG, '--model', model, '--methods', 'chefer', '--out-dir', join(folder, 'batch'), '--quiet']);
      assert.equal(batch.code, 0, batch.stderr);
      const e = await createExplainer({ model, threads: 2 });
      try {
        const tensor = e.preprocess(await readImage(DOG));
        assert.deepEqual(npy(join(folder, 'map.npy')).data, (await e.explain(tensor, { resolutions: [224, 320] })).map);
        const saved = readdirSync(join(folder, 'batch')).find((n) => n.endsWith('.npy')) as string;
        assert.match(saved, /^dog\.chefer\./);
        assert.deepEqual(npy(join(folder, 'batch', saved)).data, (await e.explain(tensor, { method: 'chefer' })).map);
      } finally {
        await e.dispose();
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  for (const convention of ['torchvision', 'timm'] as const)
    it(`resamples the position embedding as ${convention} does, at 320 and 512 px, inside the explainer's graphs`, async () => {
      const e = await Explainer.create(ort, {
        model: bytes(resolve(FOLDER, 'positions.onnx')),
        layer: 'conv_proj',
        profile: { positionResample: convention },
        threads: 2,
      });
      try {
        assert.equal(e.profile.positionGrid, 14);
        const black = { data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] };
        for (const size of [320, 512]) {
          const exact = npy(resolve(FOLDER, `positions.${convention}.${size}.npy`)).data;
          const other = npy(resolve(FOLDER, `positions.${convention === 'timm' ? 'torchvision' : 'timm'}.${size}.npy`)).data;
          const ours = difference(await e.logits(black, size), exact);
          assert.ok(ours.max <= 1e-5, `${convention} at ${size} px: max |ours - exact| = ${ours.max}`);
          assert.ok(difference(other, exact).max > 0.1, 'the two conventions differ: the comparison can tell them apart');
        }
        if (convention === 'timm')
          await assert.rejects(
            e.logits(black, 192),
            /192 px gives a 12 x 12 patch grid, smaller than the 14 x 14 .* use sizes of at least 224 px/,
          );
      } finally {
        await e.dispose();
      }
    });

  it('sizes that are not whole patch grids, the trained size of a dynamic export, and a resampling asked of a CNN', async () => {
    const e = await explainer('vit');
    const input = npy(resolve(INPUTS, 'dog.input.npy'));
    // 330 px is 20 patches and 10 pixels: the patch size lays the tokens out (a guess from the count said 17).
    assert.deepEqual((await e.explain(input, { resolutions: [230, 330] })).usedResolutions?.length, 2);
    // A dynamic-side export is taken at its position embedding's grid times its patch.
    assert.equal(resolveProfile(OnnxGraph.fromBytes(bytes(resolve(FOLDER, 'vit.onnx'))), { patch: 32 }).inputSize, 14 * 32);
    await assert.rejects(
      Explainer.create(ort, { model: bytes(resolve(FIXTURES, 'torch', 'dynamic_gap.onnx')), profile: { positionResample: 'timm' } }),
      /has no learnt position embedding to resample/,
    );
  });

  it("the zoo's trained ViT (composite:vit): its layer, labels and patch scales, and the sneaker of composite_010", async () => {
    const e = await createExplainer({ model: 'composite:vit', threads: 2 });
    try {
      assert.equal(e.layer.name, 'encoder.layers.encoder_layer_3.ln_1');
      assert.deepEqual(e.profile.resolutions, DEFAULTS.vit?.resolutions);
      const result = await e.explain(e.preprocess(await readImage(resolve(ROOT, 'bench/composite/composite_010.jpg'))), {
        method: 'gradcam',
      });
      assert.equal(e.profile.labels?.[result.classIndex as number], 'sneaker');
    } finally {
      await e.dispose();
    }
  });
});
