/**
 * The paper's architectures (VGG-16, DenseNet-121, Inception-v3, ResNet-152, -50, -18) with seeded torchvision weights
 * (bench/seeded_weights.py, then our torchvision builders): the plain forward passes at the 8 scales (the floor),
 * CAMERAS in process, the CLI process and the authors' method in the same run: their warm run in process (`authors`)
 * and their whole process for one image as the issue timed it (`authorsProcess`: Python, imports, the weights loaded,
 * one cold run), against our whole CLI process. Prints one JSON line per architecture; needs python3-torchvision.
 * `node dist/bench/archs.js [arch ...] [--runs n] [--no-authors]`
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readImage, writeNpyFile } from '../src/index.js';
import { PRESETS, type PreprocessPreset, preprocess } from '../src/io/preprocess.js';
import { resolveModel } from '../src/models/zoo-node.js';
import { BENCH, MODELS } from './models.js';
import { median, processRuns } from './processes.js';

const ROOT = resolve(BENCH, '..');
const PYTHON = '/usr/bin/python3';
const ARCHS: Record<string, { layer: string; size: number }> = {
  vgg16: { layer: 'features.29', size: 224 },
  densenet121: { layer: 'features', size: 224 },
  inception_v3: { layer: 'Mixed_7c', size: 299 },
  resnet152: { layer: 'layer4', size: 224 },
  resnet50: { layer: 'layer4', size: 224 },
  resnet18: { layer: 'layer4', size: 224 },
};
const args = process.argv.slice(2);
const runs = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 3;
const authors = !args.includes('--no-authors');
const chosen = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--runs');

function json(command: string, argv: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const out = execFileSync(command, argv, { encoding: 'utf8', maxBuffer: 1 << 20, env: { ...process.env, ...env } });
  return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;
}

// A fresh clone has no bench/models/ yet.
mkdirSync(MODELS, { recursive: true });
for (const arch of chosen.length ? chosen : Object.keys(ARCHS)) {
  const { layer, size } = ARCHS[arch] as { layer: string; size: number };
  const model = resolve(MODELS, `${arch}.onnx`);
  // Our model is built from these, and the authors' whole process loads them.
  const weights = resolve(MODELS, `${arch}.safetensors`);
  if ((authors || !existsSync(model)) && !existsSync(weights)) execFileSync(PYTHON, [resolve(BENCH, 'seeded_weights.py'), arch, weights]);
  if (!existsSync(model)) writeFileSync(model, (await resolveModel(`torchvision:${arch}`, weights)).bytes);
  const input = resolve(MODELS, `${arch}.input.npy`);
  await writeNpyFile(
    input,
    preprocess(await readImage(resolve(ROOT, 'test/fixtures/images/dog.jpg')), PRESETS.torchvision as PreprocessPreset, size),
  );
  const resolutions = Array.from({ length: 8 }, (_, i) => size + 100 * i);
  const env = { CAMERAS_BENCH_LAYER: layer, CAMERAS_BENCH_RESOLUTIONS: resolutions.join(',') };
  const measure = (task: string) => json(process.execPath, [resolve(ROOT, 'dist/bench/measure.js'), task, model, input, String(runs)], env);
  const floor = measure('forward-sum');
  const cameras = measure('cameras');
  const cliArgs = [
    resolve(ROOT, 'dist/src/cli/main.js'),
    'explain',
    resolve(ROOT, 'test/fixtures/images/dog.jpg'),
    '--model',
    model,
    '--layer',
    layer,
    '--class',
    '243',
    '--resolutions',
    resolutions.join(','),
    '--out',
    '/tmp/cameras-bench-arch.png',
    '--quiet',
  ];
  // The first run builds the session cache (what every later process starts from): timed apart, as cliFirst.
  const cliFirst = processRuns(process.execPath, cliArgs, 1).times[0];
  const cli = processRuns(process.execPath, cliArgs, runs);
  const result: Record<string, unknown> = {
    arch,
    layer,
    floor: median(floor.times as number[]),
    floorRss: floor.maxRssMiB,
    cameras: median(cameras.times as number[]),
    camerasRss: cameras.maxRssMiB,
    cli: median(cli.times),
    cliRss: cli.maxRssMiB,
    cliFirst,
  };
  if (authors) {
    const theirs = json(PYTHON, [resolve(BENCH, 'authors_cameras.py'), arch, input, '1', layer]);
    result.authors = median(theirs.times as number[]);
    result.authorsRss = theirs.maxRssMiB;
    const whole = processRuns(PYTHON, [resolve(BENCH, 'authors_cameras.py'), arch, input, 'process', layer, weights], 1);
    result.authorsProcess = whole.times[0];
    result.authorsProcessRss = whole.maxRssMiB;
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
