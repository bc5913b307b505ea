/**
 * CAMERAS on the bundled MobileNetV2 in the browser page (Chromium headless, onnxruntime-web wasm, 2 threads)
 * against the Node CLI on the same photo; prints one JSON line. Needs /usr/bin/chromium; run by bench/run.ts.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { serveApp } from '../src/cli/serve.js';
import { BENCH } from './models.js';

const ROOT = resolve(BENCH, '..');
const PHOTO = resolve(ROOT, 'test/fixtures/images/dog.jpg');
const runs = Number(process.argv[2] ?? 3);

const server = await serveApp(0);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--renderer-process-limit=1'] });
const page = await (await browser.newContext({ deviceScaleFactor: 1 })).newPage();
const result: Record<string, unknown> = { task: 'web' };
try {
  await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
  await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes(' ready ('), null, {
    timeout: 120_000,
  });
  result.backend = await page.textContent('[data-testid=status]');
  await page.setInputFiles('[data-testid=image-input]', PHOTO);
  await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('ready to explain'));
  const page_: number[] = [];
  for (let i = 0; i <= runs; i++) {
    await page.evaluate(() => {
      (window as { camerasLastResult?: unknown }).camerasLastResult = undefined;
    });
    const started = Date.now();
    await page.click('[data-testid=run]');
    await page.waitForFunction(() => (window as { camerasLastResult?: unknown }).camerasLastResult !== undefined, null, {
      timeout: 120_000,
    });
    if (i > 0) page_.push((Date.now() - started) / 1000); // the first run warms the sessions
  }
  result.page = page_;
  const cli: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = Date.now();
    execFileSync(process.execPath, [
      resolve(ROOT, 'dist/src/cli/main.js'),
      'explain',
      PHOTO,
      '--out',
      '/tmp/cameras-bench-web.png',
      '--quiet',
    ]);
    cli.push((Date.now() - started) / 1000);
  }
  result.cli = cli;
} finally {
  await browser.close();
  server.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
