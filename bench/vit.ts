/**
 * ViT-B/16 (torchvision's vit_b_16, seeded weights, exported by bench/export_vit.py with torch.onnx.export): CAMERAS at
 * its 8 default scales (224, 320, ..., 896 px: whole patch grids, the position embedding resampled per scale) against
 * the plain forward passes at those scales (the floor, the same resampling), our Grad-CAM at 224 px against
 * pytorch-grad-cam's on the same weights, and the CLI process's time and peak RSS (the largest scale has 3137 tokens).
 * Prints one JSON line; needs python3-torchvision, and for pytorch-grad-cam's timing a checkout of it (with its own
 * dependencies, ttach among them) named by --pytorch-grad-cam <dir>.
 * `node dist/bench/vit.js [--runs n] [--pytorch-grad-cam <dir>]`
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { readImage, writeNpyFile } from '../src/index.js';
import { PRESETS, type PreprocessPreset, preprocess } from '../src/io/preprocess.js';
import { BENCH, MODELS } from './models.js';
import { median, processRuns } from './processes.js';

const ROOT = resolve(BENCH, '..');
const PYTHON = '/usr/bin/python3';
const LAYER = 'encoder.layers.encoder_layer_11.ln_1';
const RESOLUTIONS = [224, 320, 416, 512, 608, 704, 800, 896];
const args = process.argv.slice(2);
const option = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const runs = Number(option('--runs') ?? 3);
const gradCamCheckout = option('--pytorch-grad-cam');

function json(command: string, argv: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const out = execFileSync(command, argv, { encoding: 'utf8', maxBuffer: 1 << 20, env: { ...process.env, ...env } });
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;
}

mkdirSync(MODELS, { recursive: true });
const model = resolve(MODELS, 'vit_b_16.onnx');
const weights = resolve(MODELS, 'vit_b_16.pt');
if (!existsSync(model) || !existsSync(weights)) execFileSync(PYTHON, [resolve(BENCH, 'export_vit.py'), model, weights]);
const photo = resolve(ROOT, 'test/fixtures/images/dog.jpg');
const input = resolve(MODELS, 'vit_b_16.input.npy');
await writeNpyFile(input, preprocess(await readImage(photo), PRESETS.torchvision as PreprocessPreset, 224));
const env = { CAMERAS_BENCH_LAYER: LAYER, CAMERAS_BENCH_RESOLUTIONS: RESOLUTIONS.join(',') };
const measure = (task: string, extra: Record<string, string> = {}) =>
  json(process.execPath, [resolve(ROOT, 'dist/bench/measure.js'), task, model, input, String(runs)], { ...env, ...extra });
const floor = measure('forward-sum', { CAMERAS_BENCH_RESAMPLE: '1' });
const cameras = measure('cameras');
const gradcam = measure('gradcam');
const cliArgs = [
  resolve(ROOT, 'dist/src/cli/main.js'),
  'explain',
  photo,
  '--model',
  model,
  '--class',
  '243',
  '--out',
  '/tmp/cameras-bench-vit.png',
  '--quiet',
];
const cliFirst = processRuns(process.execPath, cliArgs, 1).times[0];
const cli = processRuns(process.execPath, cliArgs, runs);
const result: Record<string, unknown> = {
  model: 'vit_b_16',
  layer: LAYER,
  resolutions: RESOLUTIONS,
  floor: median(floor.times as number[]),
  floorRss: floor.maxRssMiB,
  cameras: median(cameras.times as number[]),
  camerasRss: cameras.maxRssMiB,
  ratio: median(cameras.times as number[]) / median(floor.times as number[]),
  gradcam: median(gradcam.times as number[]),
  cli: median(cli.times),
  cliRss: cli.maxRssMiB,
  cliFirst,
};
if (gradCamCheckout) {
  const theirs = json(PYTHON, [resolve(BENCH, 'gradcam_vit.py'), gradCamCheckout, weights, input, String(runs * 3)]);
  result.pytorchGradCam = median(theirs.times as number[]);
  result.pytorchGradCamRss = theirs.maxRssMiB;
  result.camerasOverPytorchGradCam = (result.cameras as number) / (result.pytorchGradCam as number);
} else process.stderr.write('pytorch-grad-cam not timed: give --pytorch-grad-cam <checkout>\n');
process.stdout.write(`${JSON.stringify(result)}\n`);
