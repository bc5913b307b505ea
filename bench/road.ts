/**
 * ROAD's imputations, ours against pytorch-grad-cam's (scipy's spsolve), on the same image and map:
 *   node dist/bench/road.js [sizes...]      (default: 224 and dog.jpg's own 768 x 576)
 * The image is ../shared/images/dog.jpg (torchvision preprocessing) at each size, the map the bundled MobileNetV2's
 * Grad-CAM map at that size; 18 imputations each (MoRF and LeRF at percentiles 10..90, noise 0). Prints one JSON line
 * per size: both totals, the ratio, and the largest difference between the imputed images.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resizePlaneBilinear } from '../src/engine/resize.js';
import { createExplainer, readImage, writeNpyFile } from '../src/index.js';
import { normalise, PRESETS, resizeLinearUint8 } from '../src/io/preprocess.js';
import { noisyLinearImpute, percentile } from '../src/metrics/road.js';
import { BENCH } from './models.js';

const sizes = process.argv.slice(2).map((s) => s.split('x').map(Number) as [number, number]);
const photo = await readImage(resolve(BENCH, '../../shared/images/dog.jpg'));
const explainer = await createExplainer({ model: 'nsfwjs:mobilenet_v2', threads: 2 });
const map224 = (await explainer.explain(explainer.preprocess(photo), { method: 'gradcam' })).map;
await explainer.dispose();
for (const [width, height] of sizes.length
  ? sizes
  : ([
      [224, 224],
      [photo.width, photo.height],
    ] as [number, number][])) {
  const folder = mkdtempSync(join(tmpdir(), 'cameras-road-'));
  try {
    const image = normalise(resizeLinearUint8(photo, width, height), PRESETS.torchvision as (typeof PRESETS)[string]);
    const map = Float32Array.from(resizePlaneBilinear(Float64Array.from(map224), 224, 224, height, width));
    await writeNpyFile(join(folder, 'image.npy'), image);
    await writeNpyFile(join(folder, 'map.npy'), { data: map, shape: [height, width] });
    let ours = 0;
    for (const [order, values] of [
      ['morf', Array.from(map)],
      ['lerf', Array.from(map, (v) => 1 - v)],
    ] as const) {
      for (let p = 10; p < 100; p += 10) {
        const threshold = percentile(values, p);
        const started = performance.now();
        const imputed = noisyLinearImpute(
          image,
          Uint8Array.from(values, (v) => (v < threshold ? 1 : 0)),
          0,
        );
        ours += (performance.now() - started) / 1000;
        await writeNpyFile(join(folder, `ours.${order}.${p}.npy`), { data: imputed, shape: image.shape });
      }
    }
    const reference = spawnSync(
      '/usr/bin/python3',
      [resolve(BENCH, 'road_reference.py'), join(folder, 'image.npy'), join(folder, 'map.npy')],
      {
        encoding: 'utf8',
      },
    );
    if (reference.status !== 0) throw new Error(`python3-scipy is needed: ${reference.stderr}`);
    const scipy = JSON.parse(reference.stdout) as { seconds: number; largestDifference: number };
    process.stdout.write(
      `${JSON.stringify({ size: `${width}x${height}`, ours: Math.round(ours * 100) / 100, scipy: Math.round(scipy.seconds * 100) / 100, ratio: Math.round((ours / scipy.seconds) * 100) / 100, largestDifference: scipy.largestDifference })}\n`,
    );
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
