import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { serveApp } from '../src/cli/serve.js';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import { PRESETS, preprocess } from '../src/io/preprocess.js';
import { resolutionsFor } from '../src/models/zoo.js';
import { FIXTURES, ROOT } from './helpers.js';

declare global {
  interface Window {
    camerasLastResult?: {
      map: number[];
      width: number;
      height: number;
      classPerResolution: Record<string, number>;
      method: string;
      target: string;
      detections?: { box: [number, number, number, number]; label: number; score: number }[];
      detection?: number;
    };
  }
}

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)`;
if (skip) process.stderr.write(`browser tests skipped: ${skip}\n`);
const DOG = resolve(ROOT, 'test/fixtures/images/dog.jpg');
const work = mkdtempSync(join(tmpdir(), 'cameras-web-'));

describe('cameras serve', () => {
  it('sends the isolation headers, answers a malformed path with 400 and a path out of its folders with 404', async () => {
    const server = await serveApp(0);
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const index = await fetch(`${base}/`);
      assert.equal(index.status, 200);
      assert.equal(index.headers.get('cross-origin-opener-policy'), 'same-origin');
      assert.equal(index.headers.get('cross-origin-embedder-policy'), 'require-corp');
      assert.equal((await fetch(`${base}/%E0`)).status, 400);
      assert.equal((await fetch(`${base}/models/..%2F..%2Fpackage.json`)).status, 404);
      assert.equal((await fetch(`${base}/models/nsfwjs_mobilenet_v2.onnx`)).status, 200);
      // HEAD is GET without a body (it was 405); other methods are not allowed, and say which are.
      const head = await fetch(`${base}/`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), index.headers.get('content-length'));
      assert.equal((await head.text()).length, 0);
      assert.equal((await fetch(`${base}/nothing-here`, { method: 'HEAD' })).status, 404);
      const post = await fetch(`${base}/`, { method: 'POST', body: 'x' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
    } finally {
      server.close();
    }
  });

  it('refuses a port out of range in one line with the usage exit code (it was an internal error with a stack)', async () => {
    const run = spawnSync(process.execPath, [resolve(ROOT, 'dist/src/cli/main.js'), 'serve', '--port', '99999'], { encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /--port.*expected a port from 0 to 65535/);
  });
});

describe('the browser app in Chromium (playwright-core, headless)', { skip }, () => {
  let server: Server;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const hosts = new Set<string>();
  const status = () => page.textContent('[data-testid=status]');

  before(async () => {
    server = await serveApp(0);
    origin = `127.0.0.1:${(server.address() as { port: number }).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const context = await browser.newContext();
    // Every request of the page and its workers: the page may talk to its own host only.
    context.on('request', (request) => hosts.add(new URL(request.url()).host));
    page = await context.newPage();
    await page.goto(`http://${origin}/`);
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes(' ready ('), null, {
      timeout: 60_000,
    });
  });
  after(async () => {
    await browser?.close();
    server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("computes CAMERAS on dog.jpg with the bundled MobileNetV2 equal to the Node library's map", async () => {
    assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'COOP/COEP served: wasm threads allowed');
    assert.match((await status()) ?? '', /nsfwjs:mobilenet_v2 ready \(wasm, \d+ threads?/);
    await page.setInputFiles('[data-testid=image-input]', DOG);
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('ready to explain'));
    await page.click('[data-testid=run]');
    await page.waitForFunction(() => window.camerasLastResult !== undefined, null, { timeout: 120_000 });
    const inPage = (await page.evaluate(() => window.camerasLastResult)) as {
      map: number[];
      width: number;
      height: number;
      classPerResolution: Record<string, number>;
    };
    const explainer = await createExplainer({ model: 'nsfwjs:mobilenet_v2', threads: 2 });
    try {
      const tensor = preprocess(await readImage(DOG), PRESETS.unit as (typeof PRESETS)[string], 224);
      const node = await explainer.explain(tensor, { method: 'cameras', resolutions: resolutionsFor(224) });
      assert.equal(inPage.width, node.width);
      assert.equal(inPage.map.length, node.map.length);
      let worst = 0;
      for (let i = 0; i < node.map.length; i++) worst = Math.max(worst, Math.abs((inPage.map[i] as number) - (node.map[i] as number)));
      assert.ok(worst <= 1e-3, `max |page - node| = ${worst}`);
      assert.deepEqual(inPage.classPerResolution, node.classPerResolution);
    } finally {
      await explainer.dispose();
    }
    assert.match((await status()) ?? '', /^Done: cameras explains 2 Neutral/);
    // The overlay keeps the photo's aspect (768 x 576), as the CLI's does; it was squashed into the 224 px square.
    assert.deepEqual(
      await page.evaluate(() => {
        const c = document.querySelector('[data-testid=result-canvas]') as HTMLCanvasElement;
        return [c.width, c.height];
      }),
      [768, 576],
    );
    // The picture on the canvas is a heat map, not a flat colour.
    const shot = join(work, 'result.png');
    await page.locator('[data-testid=result-canvas]').screenshot({ path: shot });
    const { channels } = await sharp(shot).stats();
    assert.ok(
      channels.slice(0, 3).every((c) => c.stdev > 20),
      `channel spreads ${channels.map((c) => c.stdev.toFixed(1))}`,
    );
  });

  it('a corrupt JPEG and a file that is not an image each show one error in the status', async () => {
    const corrupt = join(work, 'corrupt.jpg');
    writeFileSync(corrupt, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0, 1]));
    const text = join(work, 'notes.txt');
    writeFileSync(text, 'not a picture\n');
    for (const [file, name] of [
      [corrupt, 'corrupt.jpg'],
      [text, 'notes.txt'],
    ] as const) {
      await page.setInputFiles('[data-testid=image-input]', file);
      await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.classList.contains('error'));
      assert.equal(await status(), `cannot decode ${name}: it is not a JPEG, PNG or WebP image the browser can read`);
      // The previous image's overlay is gone and Explain waits for an image (both stayed).
      assert.equal(await page.isDisabled('[data-testid=run]'), true, 'Explain is disabled without an image');
      assert.equal(await page.isVisible('[data-testid=result-canvas]'), false, "the previous image's overlay is gone");
      assert.equal(await page.isVisible('#download'), false);
      assert.equal(await page.evaluate(() => window.camerasLastResult), undefined);
    }
  });

  it('runs several methods side by side, keyboard first, and asks for nothing but its own host', async () => {
    await page.setInputFiles('[data-testid=image-input]', DOG);
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('ready to explain'));
    assert.equal(await page.isDisabled('[data-testid=run]'), false, 'an image chosen: Explain is enabled again');
    await page.selectOption('[data-testid=method-select]', ['gradcam', 'gradient']);
    await page.focus('[data-testid=run]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.startsWith('Done: gradcam'), null, {
      timeout: 60_000,
    });
    assert.equal(await page.locator('#results canvas').count(), 2);
    assert.equal((await page.evaluate(() => window.camerasLastResult?.method)) as string, 'gradcam');
    assert.deepEqual([...hosts], [origin]);
  });

  it('explains a Vision Transformer file as the Node library does: its patch-multiple resolutions, layer and map', async () => {
    const vit = resolve(FIXTURES, 'transformers/vit.onnx');
    await page.selectOption('[data-testid=method-select]', ['cameras']);
    await page.setInputFiles('#model-file', vit);
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('vit.onnx ready ('), null, {
      timeout: 60_000,
    });
    assert.match((await status()) ?? '', /layer encoder\.layers\.encoder_layer_1\.ln_1/);
    assert.equal(await page.inputValue('#resolutions'), '224,320,416,512,608,704,800,896');
    await page.fill('#resolutions', '224,320');
    await page.evaluate(() => {
      window.camerasLastResult = undefined;
    });
    await page.click('[data-testid=run]');
    await page.waitForFunction(() => window.camerasLastResult !== undefined, null, { timeout: 120_000 });
    const inPage = (await page.evaluate(() => window.camerasLastResult)) as { map: number[]; classPerResolution: Record<string, number> };
    const explainer = await createExplainer({ model: vit, threads: 2 });
    try {
      const node = await explainer.explain(explainer.preprocess(await readImage(DOG)), { resolutions: [224, 320] });
      let worst = 0;
      for (let i = 0; i < node.map.length; i++) worst = Math.max(worst, Math.abs((inPage.map[i] as number) - (node.map[i] as number)));
      assert.ok(worst <= 1e-3, `max |page - node| = ${worst}`);
      assert.deepEqual(inPage.classPerResolution, node.classPerResolution);
    } finally {
      await explainer.dispose();
    }
    // The bundled trained ViT is offered as the CNNs are.
    await page.selectOption('[data-testid=model-select]', 'composite:vit');
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('composite:vit ready ('), null, {
      timeout: 60_000,
    });
    assert.match((await status()) ?? '', /layer encoder\.layers\.encoder_layer_3\.ln_1/);
  });

  /** Runs the chosen methods and waits for the result the page keeps for tests. */
  async function runAndWait(): Promise<NonNullable<Window['camerasLastResult']>> {
    await page.evaluate(() => {
      window.camerasLastResult = undefined;
    });
    await page.click('[data-testid=run]');
    await page.waitForFunction(() => window.camerasLastResult !== undefined, null, { timeout: 120_000 });
    return (await page.evaluate(() => window.camerasLastResult)) as NonNullable<Window['camerasLastResult']>;
  }

  /** The largest difference between a map of the page and the Node library's. */
  const worstOf = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let worst = 0;
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
    return worst;
  };

  it("draws a detector's detections, explains the best, then the one whose box is clicked, as the Node library does", async () => {
    await page.selectOption('[data-testid=model-select]', 'composite:detector');
    await page.waitForFunction(
      () => document.querySelector('[data-testid=status]')?.textContent?.includes('composite:detector ready ('),
      null,
      {
        timeout: 60_000,
      },
    );
    await page.selectOption('#photo-select', 'photos/composite_scene.jpg');
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('ready to explain'));
    await page.selectOption('[data-testid=method-select]', ['gradcam']);
    const first = await runAndWait();
    assert.ok((first.detections?.length ?? 0) >= 2, 'the scene has several items');
    assert.equal(first.detection, 0);
    assert.match(first.target, /^box:/);
    assert.match((await status()) ?? '', /^Done: detection 0 \(\w+, 0\.\d\d, at [\d,]+\): gradcam explains box:/);
    const explainer = await createExplainer({ model: 'composite:detector', threads: 2 });
    try {
      const tensor = explainer.preprocess(await readImage(resolve(ROOT, 'assets/images/composite_scene.jpg')));
      const found = await explainer.detect(tensor);
      assert.deepEqual(
        first.detections?.map((d) => d.box.map((v) => Math.round(v))),
        found.map((d) => d.box.map((v) => Math.round(v))),
      );
      // A click in the middle of the second detection's box explains the smallest box there (its own, unless nested).
      const box = (first.detections as { box: number[] }[])[1]?.box as [number, number, number, number];
      const [cx, cy] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
      const under = found
        .map((d, i) => ({ i, area: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]), d }))
        .filter(({ d }) => cx >= d.box[0] && cx <= d.box[2] && cy >= d.box[1] && cy <= d.box[3])
        .sort((a, b) => a.area - b.area)[0]?.i as number;
      const bounds = (await page.locator('[data-testid=result-canvas]').boundingBox()) as { width: number; height: number };
      await page.evaluate(() => {
        window.camerasLastResult = undefined;
      });
      await page.click('[data-testid=result-canvas]', { position: { x: (cx / 224) * bounds.width, y: (cy / 224) * bounds.height } });
      await page.waitForFunction(() => window.camerasLastResult !== undefined, null, { timeout: 120_000 });
      const clicked = (await page.evaluate(() => window.camerasLastResult)) as NonNullable<Window['camerasLastResult']>;
      assert.equal(clicked.detection, under);
      assert.equal(await page.inputValue('[data-testid=detection-select]'), String(under));
      const target = await explainer.detectionTarget(found[under] as (typeof found)[number], { width: 224, height: 224 });
      const node = await explainer.explain(tensor, { method: 'gradcam', target });
      assert.equal(clicked.target, node.target);
      assert.ok(worstOf(clicked.map, node.map) <= 1e-4, `max |page - node| = ${worstOf(clicked.map, node.map)}`);
    } finally {
      await explainer.dispose();
    }
  });

  it("explains a segmenter's region (the largest class but the background) as the Node library does", async () => {
    await page.selectOption('[data-testid=model-select]', 'composite:segmenter');
    await page.waitForFunction(
      () => document.querySelector('[data-testid=status]')?.textContent?.includes('composite:segmenter ready ('),
      null,
      {
        timeout: 60_000,
      },
    );
    await page.selectOption('[data-testid=method-select]', ['gradcam']);
    const result = await runAndWait();
    assert.match(result.target, /^segment:\d+$/);
    assert.equal(await page.isHidden('#detection-box'), true, 'no detections to pick');
    const explainer = await createExplainer({ model: 'composite:segmenter', threads: 2 });
    try {
      const tensor = explainer.preprocess(await readImage(resolve(ROOT, 'assets/images/composite_scene.jpg')));
      const node = await explainer.explain(tensor, { method: 'gradcam', target: { segment: Number(result.target.split(':')[1]) } });
      assert.ok(worstOf(result.map, node.map) <= 1e-4, `max |page - node| = ${worstOf(result.map, node.map)}`);
    } finally {
      await explainer.dispose();
    }
  });
});
