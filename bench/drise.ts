/**
 * D-RISE's cost per box: masks per second, ours (ONNX Runtime, masked images in batches of 16) against
 * microsoft/vision-explanation-methods' DRISE_saliency (PyTorch, one masked image per pass) on the same trained
 * composite detector and image, both on 2 threads, each in its own process:
 *
 *     node dist/bench/drise.js <vision-explanation-methods checkout> [masks]
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import { BENCH } from './models.js';

const ROOT = resolve(BENCH, '..');
const checkout = process.argv[2];
if (!checkout) throw new Error('give a checkout of microsoft/vision-explanation-methods');
const masks = Number(process.argv[3] ?? 1000);
const image = resolve(ROOT, 'bench/composite-detection/scene_002.jpg');

const explainer = await createExplainer({ model: 'composite:detector', threads: 2 });
const tensor = explainer.preprocess(await readImage(image));
const [best] = await explainer.detect(tensor);
if (!best) throw new Error('no detection');
const target = await explainer.detectionTarget(best, { width: 224, height: 224 });
await explainer.explain(tensor, { method: 'drise', target, samples: 32 }); // warm-up
const started = performance.now();
await explainer.explain(tensor, { method: 'drise', target, samples: masks });
const ours = (performance.now() - started) / 1000;
await explainer.dispose();
const reference = JSON.parse(
  execFileSync('/usr/bin/python3', [resolve(ROOT, 'bench/drise_reference.py'), resolve(checkout), String(masks), image, '2'], {
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .pop() as string,
) as { seconds: number; masks_per_second: number };
const row = (name: string, seconds: number) =>
  `${name.padEnd(46)} ${seconds.toFixed(2).padStart(7)} s  ${(masks / seconds).toFixed(0).padStart(5)} masks/s`;
process.stdout.write(
  `D-RISE, ${masks} masks, one box of the composite detector, 2 threads\n${row('ours (ONNX Runtime, batches of 16)', ours)}\n${row('vision-explanation-methods (PyTorch)', reference.seconds)}\nratio: ours ${(reference.seconds / ours).toFixed(2)}x faster\n`,
);
