/**
 * How far insertion/deletion AUCs move with the order of tied map values, on a real model:
 *   node dist/bench/rise-ties.js [images]
 * For the first composite benchmark images (default 10), the composite model's Grad-CAM map quantised to 8 bits
 * (as a PNG holds it) and its 14 x 14 map upsampled 16x by nearest neighbours; each scored in our order (stable,
 * the later pixel first on ties) and in numpy's (`np.flip(np.argsort(...))`, RISE's own, computed by Debian's
 * python3-numpy). Prints the largest |AUC difference| per map kind and mode as one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createExplainer, readImage, readNpyFile, writeNpyFile } from '../src/index.js';
import { causalMetric } from '../src/metrics/insertion-deletion.js';
import { BENCH } from './models.js';

const count = Number(process.argv[2] ?? 10);
const folder = mkdtempSync(join(tmpdir(), 'cameras-ties-'));
const explainer = await createExplainer({ model: 'composite:fashion-single-scale', threads: 2 });
const worst: Record<string, number> = {};
try {
  const inputs = [];
  for (let i = 0; i < count; i++) {
    const name = `composite_${String(i).padStart(3, '0')}`;
    const input = explainer.preprocess(await readImage(resolve(BENCH, 'composite', `${name}.jpg`)));
    const result = await explainer.explain(input, { method: 'gradcam', raw: true });
    const raw = result.raw as NonNullable<typeof result.raw>;
    const relu = Array.from(raw.data, (v) => Math.max(0, v));
    const [lo, hi] = [Math.min(...relu), Math.max(...relu)];
    const grid = Float32Array.from({ length: 224 * 224 }, (_, p) => {
      const [y, x] = [Math.floor(p / 224), p % 224];
      return ((relu[Math.floor((y * raw.height) / 224) * raw.width + Math.floor((x * raw.width) / 224)] as number) - lo) / (hi - lo || 1);
    });
    const maps = { bytes: Float32Array.from(result.map, (v) => Math.round(v * 255) / 255), grid };
    for (const [kind, map] of Object.entries(maps))
      await writeNpyFile(join(folder, `${name}.${kind}.npy`), { data: map, shape: [224, 224] });
    inputs.push({ name, input, maps });
  }
  // RISE's order: numpy's default argsort, flipped.
  const numpy = spawnSync(
    '/usr/bin/python3',
    [
      '-c',
      "import sys, glob, numpy as np\nfor f in glob.glob(sys.argv[1] + '/*.npy'):\n m = np.load(f); np.save(f[:-4] + '.order', np.flip(np.argsort(m.reshape(1, -1), axis=1), axis=-1)[0].astype('float32'))",
      folder,
    ],
    { encoding: 'utf8' },
  );
  if (numpy.status !== 0) throw new Error(`python3-numpy is needed: ${numpy.stderr}`);
  const forward = (batch: Parameters<typeof explainer.forward>[0]) => explainer.forward(batch);
  for (const { name, input, maps } of inputs) {
    for (const [kind, map] of Object.entries(maps)) {
      const order = (await readNpyFile(join(folder, `${name}.${kind}.order.npy`))).data;
      for (const mode of ['deletion', 'insertion'] as const) {
        const ours = await causalMetric(forward, input, map, mode);
        const rise = await causalMetric(forward, input, map, mode, { order });
        worst[`${kind} ${mode}`] = Math.max(worst[`${kind} ${mode}`] ?? 0, Math.abs(ours.auc - rise.auc));
      }
    }
  }
} finally {
  await explainer.dispose();
  rmSync(folder, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ images: count, largestAucDifference: worst })}\n`);
