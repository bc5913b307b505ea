import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { CamerasError, createExplainer, Explainer, loadImageTensor, outlineModel, readNpyFile, writeNpyFile } from '../src/index.js';
import { sessionCacheFor } from '../src/models/session-cache-node.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { ROOT } from './helpers.js';

describe('the Node entry point', () => {
  const cache = mkdtempSync(join(tmpdir(), 'cameras-api-cache-'));
  const before = process.env.CAMERAS_CACHE_DIR;
  process.env.CAMERAS_CACHE_DIR = cache;
  after(() => {
    if (before === undefined) delete process.env.CAMERAS_CACHE_DIR;
    else process.env.CAMERAS_CACHE_DIR = before;
    rmSync(cache, { recursive: true, force: true });
  });

  it('takes a zoo name as the model, with the zoo layer as the default target', async () => {
    const explainer = await createExplainer({ model: 'nsfwjs:mobilenet_v2', threads: 2 });
    try {
      assert.equal(explainer.layer.name, 'out_relu');
      const input = await loadImageTensor(resolve(ROOT, 'assets/images/cat_dog.png'), 'unit');
      const result = await explainer.explain(input, { method: 'gradcam' });
      assert.equal(result.empty, false);
      assert.equal(explainer.classCount, 5);
    } finally {
      await explainer.dispose();
    }
  });

  it('a zoo model is the same in the library and the CLI: its preprocessing, its resolutions, its map to the bit', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'cameras-api-zoo-'));
    const explainer = await createExplainer({ model: 'nsfwjs:inception_v3', threads: 2 });
    try {
      // The profile's preprocessing for an image file: 299 px, /255, as nsfwjs's InceptionV3 was trained.
      const input = await loadImageTensor(resolve(ROOT, 'test/fixtures/images/dog.jpg'), explainer);
      assert.deepEqual(input.shape, [1, 3, 299, 299]);
      assert.equal(explainer.profile.preprocess, 'unit');
      assert.deepEqual(explainer.profile.resolutions, [299, 399, 499, 599, 699, 799, 899, 999]);
      const tensor = join(folder, 'dog.npy');
      const map = join(folder, 'map.npy');
      await writeNpyFile(tensor, input);
      const library = await explainer.explain(input);
      const cli = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
        execFile(
          process.execPath,
          [
            resolve(ROOT, 'dist/src/cli/main.js'),
            'explain',
            '--input',
            tensor,
            '--model',
            'nsfwjs:inception_v3',
            '--json',
            '--save-map',
            map,
          ],
          { env: { ...process.env, CAMERAS_CACHE_DIR: cache } },
          (error, stdout, stderr) => done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
      assert.equal(cli.code, 0, cli.stderr);
      const report = JSON.parse(cli.stdout) as { usedResolutions: number[]; class: number };
      assert.deepEqual(report.usedResolutions, library.usedResolutions);
      assert.equal(report.class, library.classIndex);
      assert.ok(Buffer.from((await readNpyFile(map)).data.buffer).equals(Buffer.from(library.map.buffer)), 'the same map, bit for bit');
    } finally {
      await explainer.dispose();
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it("keeps only the model's outline once its session exists, and reads the model again only for a session the cache lacks", async () => {
    const folder = mkdtempSync(join(tmpdir(), 'cameras-api-model-'));
    try {
      const path = join(folder, 'mini_resnet.onnx');
      copyFileSync(resolve(ROOT, 'assets/models/mini_resnet.onnx'), path);
      const model = new Uint8Array(readFileSync(path));
      const input = await loadImageTensor(resolve(ROOT, 'test/fixtures/images/dog.jpg'));
      const options = { resolutions: [64, 96], classIndex: 3 };
      const reference = await Explainer.create(ort, { model, threads: 2 });
      const expected = await reference.explain(input, options);
      const expectedGradient = await reference.explain(input, { method: 'gradient', classIndex: 3 });
      await reference.dispose();

      // The outline: every node and initializer's name, type and shape; no large values; marked.
      const outline = outlineModel(model);
      assert.ok(outline.length < model.length / 10, `outline ${outline.length} bytes of ${model.length}`);
      const full = OnnxGraph.fromBytes(model);
      const outlined = OnnxGraph.fromBytes(outline);
      assert.deepEqual(
        outlined.nodes.map((n) => n.output),
        full.nodes.map((n) => n.output),
      );
      assert.deepEqual(
        [...outlined.initializers.values()].map((t) => t.dims?.map(Number)),
        [...full.initializers.values()].map((t) => t.dims?.map(Number)),
      );

      // Through a path: the same map, and the outline kept beside the cached session, read next time.
      const outlines = () =>
        existsSync(join(cache, 'sessions')) ? readdirSync(join(cache, 'sessions')).filter((f) => f.endsWith('.outline.onnx')) : [];
      const before = new Set(outlines());
      for (const round of ['first', 'cached']) {
        const explainer = await createExplainer({ model: path, threads: 2 });
        assert.deepEqual([...(await explainer.explain(input, options)).map], [...expected.map], round);
        await explainer.dispose();
      }
      const kept = outlines().filter((f) => !before.has(f));
      assert.equal(kept.length, 1);
      assert.ok(statSync(join(cache, 'sessions', kept[0] as string)).size < model.length / 10);

      // A file changed after it was loaded is not read again for another session: the two would not match.
      const holding = await createExplainer({ model: path, threads: 2 });
      try {
        utimesSync(path, new Date(), new Date(Date.now() + 60_000));
        await assert.rejects(
          holding.explain(input, { method: 'gradient', classIndex: 3 }),
          (error: Error) => error instanceof CamerasError && /changed after it was loaded/.test(error.message),
        );
      } finally {
        await holding.dispose();
      }

      // From the outline alone: the cached layer session needs no weights; the input-gradient session reads them once.
      let reads = 0;
      const sessionCache = sessionCacheFor('outline test');
      const warm = await Explainer.create(ort, { model, threads: 2, sessionCache });
      await warm.dispose();
      const explainer = await Explainer.create(ort, {
        model: outline,
        threads: 2,
        sessionCache,
        loadModel: async () => {
          reads += 1;
          return model;
        },
      });
      try {
        assert.deepEqual([...(await explainer.explain(input, options)).map], [...expected.map]);
        assert.equal(reads, 0, 'the cached session needed no weights');
        const gradient = await explainer.explain(input, { method: 'gradient', classIndex: 3 });
        assert.deepEqual([...gradient.map], [...expectedGradient.map]);
        assert.equal(reads, 1, 'read once for the session the cache lacked');
      } finally {
        await explainer.dispose();
      }
      await assert.rejects(
        Explainer.create(ort, { model: outline, threads: 2 }),
        (error: Error) => error instanceof CamerasError && /outline/.test(error.message),
      );
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('a torchvision model built from its weights is held as its outline too, and built again only for a session the cache lacks', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'cameras-api-weights-'));
    try {
      const weights = join(folder, 'vgg16.safetensors');
      copyFileSync(resolve(ROOT, 'test/fixtures/torch/vgg16.safetensors'), weights);
      const input = await loadImageTensor(resolve(ROOT, 'test/fixtures/images/dog.jpg'));
      const options = { resolutions: [224, 256], classIndex: 3 };
      const outlines = () =>
        existsSync(join(cache, 'sessions')) ? readdirSync(join(cache, 'sessions')).filter((f) => f.endsWith('.outline.onnx')) : [];
      const before = new Set(outlines());
      const maps: number[][] = [];
      for (const _round of ['built', 'from the outline']) {
        const explainer = await createExplainer({ model: 'torchvision:vgg16', weights, threads: 2 });
        maps.push([...(await explainer.explain(input, options)).map]);
        assert.equal(explainer.profile.labels?.[3], 'tiger shark', "ImageNet's labels, from the outline too");
        await explainer.dispose();
      }
      assert.deepEqual(maps[1], maps[0]);
      assert.equal(outlines().filter((f) => !before.has(f)).length, 1, 'the outline kept beside the sessions');
      // Only the outline is held: a session the cache lacks builds the model again, refused once the weights changed
      // (an explainer holding the whole model, as before, ran it).
      const holding = await createExplainer({ model: 'torchvision:vgg16', weights, threads: 2 });
      try {
        utimesSync(weights, new Date(), new Date(Date.now() + 60_000));
        await assert.rejects(
          holding.explain(input, { method: 'gradient', classIndex: 3 }),
          (error: Error) => error instanceof CamerasError && /vgg16\.safetensors changed after the model was built/.test(error.message),
        );
      } finally {
        await holding.dispose();
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('corrects a class count the model declares but does not keep (a stale output shape) on the first pass', async () => {
    const model = new Uint8Array(readFileSync(resolve(ROOT, 'assets/models/mini_resnet.onnx')));
    const graph = OnnxGraph.fromBytes(model);
    const dims = graph.graph.output?.[0]?.type?.tensorType?.shape?.dim;
    assert.ok(dims?.[1]);
    dims[1] = { dimValue: 7 };
    const stale = await Explainer.create(ort, { model: graph.toBytes(), threads: 2 });
    const right = await Explainer.create(ort, { model, threads: 2 });
    try {
      assert.equal(stale.classCount, 7, 'as declared');
      const input = await loadImageTensor(resolve(ROOT, 'test/fixtures/images/dog.jpg'));
      const options = { classIndex: 4, resolutions: [64, 96] };
      assert.deepEqual([...(await stale.explain(input, options)).map], [...(await right.explain(input, options)).map]);
      assert.equal(stale.classCount, 10, 'learnt from the pass');
    } finally {
      await stale.dispose();
      await right.dispose();
    }
  });
});
