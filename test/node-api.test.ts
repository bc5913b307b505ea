import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { createExplainer, loadImageTensor } from '../src/index.js';
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
});
