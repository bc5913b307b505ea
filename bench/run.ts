/**
 * `npm run bench`: CAMERAS speed against the hardware floor (plain forward passes at the same scales)
 * and against the authors' PyTorch method, on torchvision ResNet-50 and ResNet-18 with seeded random
 * weights. Each task runs in its own process; medians and peak RSS go to a table and bench/results.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadImageTensor, writeNpyFile } from '../src/index.js';
import { resolveModel } from '../src/models/zoo-node.js';
import { BENCH, ensureModel, MODELS } from './models.js';
import { type Measurement, median, processRuns } from './processes.js';

const ROOT = resolve(BENCH, '..');
const PYTHON = '/usr/bin/python3';
const quick = process.argv.includes('--quick');

function measure(task: string, model: string, input: string, runs: number): Measurement {
  const out = execFileSync(process.execPath, [resolve(ROOT, 'dist/bench/measure.js'), task, model, input, String(runs)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop() as string) as Measurement;
}

function hasTorch(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
}

const runs = quick ? 1 : 3;
const input = resolve(MODELS, 'cat_dog.input.npy');
const photo = resolve(ROOT, 'assets/images/cat_dog.png');
const rows: { name: string; model: string; seconds: number; rss: number | null; ratio?: string; target?: string }[] = [];
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  threads: 2,
  node: process.version,
};

const r50 = ensureModel('resnet50');
const r18 = ensureModel('resnet18');
await writeNpyFile(input, await loadImageTensor(photo));
const torch = hasTorch();
for (const [name, path] of [
  ['resnet50', r50],
  ['resnet18', r18],
] as const) {
  const forward = measure('forward-sum', path, input, runs);
  const cameras = measure('cameras', path, input, runs);
  const gradient = measure('input-gradient', path, input, runs);
  const f = median(forward.times);
  const c = median(cameras.times);
  rows.push({ name: 'plain forward, 8 scales (floor)', model: name, seconds: f, rss: forward.maxRssMiB });
  rows.push({
    name: 'CAMERAS, 8 scales, in process',
    model: name,
    seconds: c,
    rss: cameras.maxRssMiB,
    ratio: `${(c / f).toFixed(2)} x floor`,
    target: '<= 1.25',
  });
  const g = median(gradient.times);
  const g0 = median(gradient.forward as number[]);
  rows.push({
    name: 'input gradient at 224',
    model: name,
    seconds: g,
    rss: gradient.maxRssMiB,
    ratio: `${(g / g0).toFixed(2)} x forward`,
    target: '<= 2.5',
  });
  const entry: Record<string, unknown> = { forward, cameras, gradient };
  if (torch) {
    const authors = JSON.parse(
      execFileSync(PYTHON, [resolve(BENCH, 'authors_cameras.py'), name, input, String(quick ? 1 : name === 'resnet50' ? 2 : 3)], {
        encoding: 'utf8',
      })
        .trim()
        .split('\n')
        .pop() as string,
    ) as Measurement;
    const a = median(authors.times);
    rows.push({
      name: "authors' method, PyTorch",
      model: name,
      seconds: a,
      rss: authors.maxRssMiB,
      ratio: `${(c / a).toFixed(2)} ours/theirs`,
    });
    entry.authors = authors;
  }
  if (name === 'resnet50') {
    const cli = processRuns(
      process.execPath,
      [
        resolve(ROOT, 'dist/src/cli/main.js'),
        'explain',
        photo,
        '--model',
        path,
        '--layer',
        'layer4',
        '--class',
        '243',
        '--out',
        join(tmpdir(), 'cameras-bench.png'),
        '--quiet',
      ],
      runs,
    );
    const seconds = median(cli.times);
    const authors = entry.authors as Measurement | undefined;
    rows.push({
      name: 'CLI process (start, load, explain, write)',
      model: name,
      seconds,
      rss: cli.maxRssMiB,
      ratio: `${authors ? `${(seconds / median(authors.times)).toFixed(2)} x authors, ` : ''}${(seconds / c).toFixed(2)} x warm`,
      target: '<= 0.22 x authors, <= 1.25 x warm, <= 1536 MiB',
    });
    entry.cli = cli;
    // The cold start's parts, in a fresh process each run (the session cache warm, as after a first run).
    const parts = Array.from({ length: runs }, () =>
      JSON.parse(
        execFileSync(process.execPath, [resolve(ROOT, 'dist/bench/startup.js'), path, photo, 'layer4'], { encoding: 'utf8' }).trim(),
      ),
    ) as Record<string, number>[];
    const part = (key: string) => median(parts.map((p) => p[key] as number));
    for (const [key, label] of [
      ['boot', 'start-up: node itself'],
      ['imports', 'start-up: imports'],
      ['load', 'start-up: model outline and cached session'],
      ['image', 'start-up: photo read and preprocessed'],
      ['firstExplain', 'start-up: first explain (arenas grow)'],
      ['warmExplain', 'start-up: the same explain, warm'],
    ] as const)
      rows.push({ name: label, model: name, seconds: part(key), rss: null });
    entry.startup = parts;
    const insdel = measure('insdel', path, input, 1);
    const one = median(insdel.forward as number[]);
    rows.push({
      name: 'insertion + deletion (RISE), one 224 px image',
      model: name,
      seconds: median(insdel.times),
      rss: insdel.maxRssMiB,
      ratio: `${(median(insdel.times) / one).toFixed(0)} x one forward`,
      target: '450 passes; a few seconds',
    });
    entry.insdel = insdel;
    if (torch) {
      // RISE's own loop (one pass per step) in PyTorch on the same map: the Python reference's cost.
      const rise = JSON.parse(
        execFileSync(PYTHON, [resolve(BENCH, 'rise_insdel.py'), name, input, insdel.mapPath as string], { encoding: 'utf8' })
          .trim()
          .split('\n')
          .pop() as string,
      ) as Measurement;
      rows.push({
        name: "insertion + deletion, RISE's code, PyTorch",
        model: name,
        seconds: median(rise.times),
        rss: rise.maxRssMiB,
        ratio: `${(median(insdel.times) / median(rise.times)).toFixed(2)} ours/theirs`,
      });
      entry.rise = rise;
    }
  } else {
    const throughput = measure('throughput', path, input, 1);
    const serial = median(throughput.times);
    const batched = median(throughput.batched as number[]);
    rows.push({
      name: '32 images, one per call',
      model: name,
      seconds: serial,
      rss: throughput.maxRssMiB,
      ratio: `${(32 / serial).toFixed(2)} images/s`,
    });
    rows.push({
      name: '32 images, stacked per scale',
      model: name,
      seconds: batched,
      rss: throughput.maxRssMiB,
      ratio: `${(32 / batched).toFixed(2)} images/s`,
    });
    entry.throughput = throughput;
  }
  results[name] = entry;
}
{
  // The attack's cost on the bundled MobileNetV2: one PGD step (21 gradient passes per run, the clean forward
  // and the penalty included) against one forward pass.
  const mobilenet = resolve(MODELS, 'nsfwjs_mobilenet_v2.onnx');
  if (!existsSync(mobilenet)) writeFileSync(mobilenet, (await resolveModel('nsfwjs:mobilenet_v2')).bytes);
  const attack = measure('pgd-step', mobilenet, photo, runs);
  const step = median(attack.times) / ((attack.steps as number) + 1);
  const forward = median(attack.forward as number[]);
  rows.push({
    name: 'one PGD step of the attack, 224 px',
    model: 'mobilenet_v2',
    seconds: step,
    rss: attack.maxRssMiB,
    ratio: `${(step / forward).toFixed(2)} x forward`,
    target: '<= 3',
  });
  results.attack = attack;
}
if (existsSync('/usr/bin/chromium')) {
  // The browser page (onnxruntime-web, wasm) against the Node CLI on the same photo and model.
  const web = JSON.parse(
    execFileSync(process.execPath, [resolve(ROOT, 'dist/bench/web.js'), String(runs)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop() as string,
  ) as { page: number[]; cli: number[]; backend: string };
  const cli = median(web.cli);
  rows.push({
    name: 'CAMERAS in the browser page, warm (Chromium, wasm)',
    model: 'mobilenet_v2',
    seconds: median(web.page),
    rss: null,
    ratio: `${(median(web.page) / cli).toFixed(2)} x CLI`,
    target: '<= 2.5',
  });
  rows.push({ name: 'CLI process (start, load, explain, write)', model: 'mobilenet_v2', seconds: cli, rss: null });
  results.web = web;
} else results.webNote = '/usr/bin/chromium is not installed: the browser rows were skipped (apt-get install chromium)';
if (spawnSync('redis-server', ['--version']).status === 0) {
  // The job engine: per-job seconds embedded and through BullMQ/Redis with 1 and 2 worker processes.
  const jobs = JSON.parse(
    execFileSync(process.execPath, [resolve(ROOT, 'dist/bench/jobs.js')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop() as string,
  ) as Record<string, { perJob: number }>;
  const embedded = (jobs.embedded as { perJob: number }).perJob;
  for (const [key, name] of [
    ['embedded', 'batch job, embedded (CAMERAS, slope of 4 vs 20 jobs)'],
    ['redis1', 'batch job through Redis, 1 worker process'],
    ['redis2', 'batch job through Redis, 2 worker processes (1 thread each)'],
  ] as const) {
    const perJob = (jobs[key] as { perJob: number }).perJob;
    rows.push({
      name,
      model: 'mobilenet_v2',
      seconds: perJob,
      rss: null,
      ratio: `${(1 / perJob).toFixed(2)} jobs/s${key === 'embedded' ? '' : `, ${((perJob / embedded - 1) * 100).toFixed(1)}% vs embedded`}`,
      ...(key === 'redis1' ? { target: '<= +10%' } : {}),
    });
  }
  results.jobs = jobs;
} else results.jobsNote = 'redis-server is not installed: the job-engine rows were skipped (apt-get install redis-server)';
if (spawnSync(PYTHON, ['-c', 'import scipy'], { encoding: 'utf8' }).status === 0) {
  // ROAD's 18 imputations of one image, ours against pytorch-grad-cam's (scipy's spsolve), on the same image and map.
  const road = execFileSync(process.execPath, [resolve(ROOT, 'dist/bench/road.js'), '224x224', '768x576'], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { size: string; ours: number; scipy: number; ratio: number });
  for (const r of road)
    rows.push({
      name: `ROAD's 18 imputations, ${r.size} (scipy's spsolve: ${r.scipy.toFixed(2)} s)`,
      model: '-',
      seconds: r.ours,
      rss: null,
      ratio: `${r.ratio.toFixed(2)} x scipy`,
      target: '<= 1',
    });
  results.road = road;
} else results.roadNote = `${PYTHON} cannot import scipy: the ROAD row was skipped (apt-get install python3-scipy)`;
if (!torch)
  results.note = `${PYTHON} cannot import torch and torchvision: the authors' baseline was skipped (apt-get install python3-torchvision)`;

const header = ['task', 'model', 'median s', 'peak RSS MiB', 'ratio', 'target'];
const table = rows.map((r) => [
  r.name,
  r.model,
  r.seconds.toFixed(3),
  r.rss === null ? '?' : r.rss.toFixed(0),
  r.ratio ?? '',
  r.target ?? '',
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] as string).length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ');
process.stdout.write(`${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${table.map(line).join('\n')}\n`);
if (results.note) process.stdout.write(`note: ${results.note}\n`);
writeFileSync(resolve(BENCH, 'results.json'), `${JSON.stringify({ ...results, table: rows }, null, 2)}\n`);
process.stdout.write(`wrote ${resolve(BENCH, 'results.json')}\n`);
