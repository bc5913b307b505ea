import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { Explainer, type ExplainOptions } from '../src/core.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

// onnxruntime-web's wasm backend runs under Node: the same core, on the browser's runtime.
ortWeb.env.wasm.numThreads = 1;

/** Every module the compiled core reaches through its static and dynamic imports, with what each imports. */
function importsOf(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    const text = readFileSync(file, 'utf8');
    const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s*'([^']+)'|import\('([^']+)'\)/g)].map(
      (m) => (m[1] ?? m[2]) as string,
    );
    seen.set(file, specifiers);
    for (const s of specifiers) if (s.startsWith('.')) visit(resolve(dirname(file), s));
  };
  visit(entry);
  return seen;
}

describe('the isomorphic core', () => {
  it('imports nothing Node-only (no Node built-in, onnxruntime-node, sharp) and uses no Node global', () => {
    const modules = importsOf(resolve(ROOT, 'dist/src/core.js'));
    for (const file of modules.keys()) {
      const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      assert.ok(!/\b(process|Buffer|require|__dirname)\s*[.(]/.test(code), `${file} uses a Node global`);
    }
    assert.ok(modules.size > 20, `the walk found the core's modules (${modules.size})`);
    assert.ok(
      [...modules.keys()].some((f) => f.endsWith('compat/numpy-svd/lapack-sign.js')),
      'dynamic imports are followed',
    );
    for (const [file, specifiers] of modules) {
      for (const s of specifiers) {
        const bare = s.replace(/^node:/, '');
        assert.ok(!s.startsWith('node:') && !builtinModules.includes(bare), `${file} imports Node's ${s}`);
        assert.ok(!['onnxruntime-node', 'sharp', 'nsfwjs'].includes(s), `${file} imports ${s}`);
      }
    }
  });

  it("resolves as 'cameras-saliency/core', and as the package itself under the browser condition", async () => {
    const core = await import('cameras-saliency/core');
    assert.equal(typeof core.Explainer.create, 'function');
    const exports = (
      JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, unknown>> }
    ).exports;
    assert.deepEqual(exports['.']?.browser, { types: './dist/src/core.d.ts', default: './dist/src/core.js' });
  });

  describe('on onnxruntime-web (wasm) gives the maps of onnxruntime-node', () => {
    const model = bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx'));
    const input = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
    const onNode = Explainer.create(ortNode, { model, layer: 'layer3', threads: 2 });
    const onWeb = Explainer.create(ortWeb, { model, layer: 'layer3' });
    // The MaxPool rule without Indices, which onnxruntime-web's WebGPU kernels need, on the same wasm backend.
    const onWebNoIndices = Explainer.create(ortWeb, { model, layer: 'layer3', maxPoolIndices: false });
    after(async () => {
      for (const e of [onNode, onWeb, onWebNoIndices]) await (await e).dispose();
    });
    const cases: [string, ExplainOptions][] = [
      ['cameras', { method: 'cameras', resolutions: [224, 288, 352] }],
      ['gradcam', { method: 'gradcam', classIndex: 5 }],
      ['gradient', { method: 'gradient', classIndex: 5 }],
      ['scorecam', { method: 'scorecam', classIndex: 5 }],
    ];
    for (const [name, options] of cases) {
      it(name, async () => {
        const expected = await (await onNode).explain(input, options);
        for (const [runtime, explainer] of [
          ['wasm', onWeb],
          ['wasm without MaxPool indices', onWebNoIndices],
        ] as const) {
          const result = await (await explainer).explain(input, options);
          assert.deepEqual(result.classPerResolution, expected.classPerResolution);
          const d = difference(result.map, expected.map);
          assert.ok(d.max <= 1e-5, `${runtime}: max |web - node| = ${d.max}`);
        }
      });
    }
  });

  it('runs a Vision Transformer on onnxruntime-web (wasm) as on onnxruntime-node: CAMERAS across patch grids, Chefer', async () => {
    const model = bytes(resolve(FIXTURES, 'transformers/vit.onnx'));
    const input = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
    const onNode = await Explainer.create(ortNode, { model, threads: 2 });
    const onWeb = await Explainer.create(ortWeb, { model });
    try {
      for (const options of [{ resolutions: [224, 320] }, { method: 'chefer' }] as ExplainOptions[]) {
        const expected = await onNode.explain(input, options);
        const result = await onWeb.explain(input, options);
        assert.deepEqual(result.classPerResolution, expected.classPerResolution);
        const d = difference(result.map, expected.map);
        assert.ok(d.max <= 1e-5, `${options.method ?? 'cameras'}: max |web - node| = ${d.max}`);
      }
    } finally {
      await onNode.dispose();
      await onWeb.dispose();
    }
  });
});
