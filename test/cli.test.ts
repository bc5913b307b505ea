import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';
import { parseVoc } from '../src/datasets/voc.js';
import { softmax, type Target } from '../src/engine/scores.js';
import { createExplainer, type Explainer, type ExplainOptions } from '../src/index.js';
import { writeNpyFile } from '../src/io/files-node.js';
import { readImage } from '../src/io/image-node.js';
import { formatNpy } from '../src/io/npy.js';
import { normalise, PRESETS, preprocess, resizeLinearUint8 } from '../src/io/preprocess.js';
import { scorePair } from '../src/jobs/evaluate.js';
import type { EigenSign } from '../src/methods/eigencam.js';
import type { ExplainResult } from '../src/methods/method.js';
import { bundledModelPath, convertNsfwjs } from '../src/models/zoo-node.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { DataType } from '../src/onnx/proto.js';
import { difference, FIXTURES, hasShared, npy, ROOT, SHARED, SHARED_REFERENCE } from './helpers.js';

const CLI = resolve(ROOT, 'dist/src/cli/main.js');
const PHOTO = resolve(ROOT, 'assets/images/cat_dog.png');
const MODEL = resolve(ROOT, 'assets/models/mini_resnet.onnx');
const INPUT = resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Converted zoo models go to a cache of the tests' own, outside the folder whose files they count. */
const cache = mkdtempSync(join(tmpdir(), 'cameras-cli-cache-'));

function cameras(args: string[], cwd = ROOT, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd, env: { ...process.env, CAMERAS_CACHE_DIR: cache, ...env } },
      (error, stdout, stderr) => {
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** The library's map of INPUT on mini_resnet, for what a CLI run must reproduce to the bit. */
const libraryExplainers = new Map<string, Promise<Explainer>>();
async function libraryMap(layer: string, options: ExplainOptions): Promise<Float32Array> {
  let explainer = libraryExplainers.get(layer);
  if (!explainer) {
    explainer = createExplainer({ model: MODEL, layer, threads: 2 });
    libraryExplainers.set(layer, explainer);
  }
  return (await (await explainer).explain(npy(INPUT), options)).map;
}
after(async () => {
  for (const explainer of libraryExplainers.values()) await (await explainer).dispose();
});

const work = mkdtempSync(join(tmpdir(), 'cameras-cli-'));
after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
});

/** A model whose path from the target to the logits has an op without a gradient rule (Elu). */
function modelWithElu(): string {
  const g = OnnxGraph.empty('elu', 13);
  g.addInput('input', DataType.FLOAT, [1, 3, 'h', 'w']);
  const w = g.addConstant('w', new Float32Array(4 * 3 * 9).fill(0.1), [4, 3, 3, 3]);
  const [features] = g.addNode('Conv', ['input', w], { pads: [1, 1, 1, 1] }, { outputs: ['features'], name: '/features/Conv' });
  const [elu] = g.addNode('Elu', [features as string], {}, { name: '/act/Elu' });
  const [pooled] = g.addNode('GlobalAveragePool', [elu as string]);
  const [flat] = g.addNode('Flatten', [pooled as string]);
  const fc = g.addConstant('fc', new Float32Array(2 * 4).fill(0.5), [2, 4]);
  g.addNode('Gemm', [flat as string, fc], { transB: 1 }, { outputs: ['logits'] });
  g.addOutput('logits');
  const path = join(work, 'elu.onnx');
  writeFileSync(path, g.toBytes());
  return path;
}

/** Bad input: a non-zero exit, exactly one line on stderr naming the problem, nothing on stdout, no file written. */
async function rejects(args: string[], pattern: RegExp, code = 2, env: Record<string, string> = {}): Promise<void> {
  const before = new Set(readdirSync(work));
  const run = await cameras(args, work, env);
  assert.equal(run.code, code, `exit code for ${args.join(' ')}: ${run.stderr}`);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${run.stderr}`);
  assert.match(lines[0] as string, pattern);
  assert.equal(run.stdout, '');
  assert.deepEqual(
    readdirSync(work).filter((f) => !before.has(f)),
    [],
    'no file written',
  );
}

describe('the installed command', () => {
  it('is executable, so the npm bin link runs it', () => {
    assert.ok((statSync(CLI).mode & 0o111) !== 0, `${CLI} is not executable`);
  });
});

describe('cameras explain', () => {
  it('writes an overlay of the bundled photo with the bundled model and no other flag', async () => {
    const run = await cameras(['explain', PHOTO], work);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^class \d \((Drawing|Hentai|Neutral|Porn|Sexy)\) at layer out_relu, fused from 224, 324, 424, 524, 624, 724, 824, 924 px/,
    );
    const out = join(work, 'cat_dog.cameras.png');
    assert.ok(existsSync(out));
    const meta = await sharp(out).metadata();
    assert.equal(meta.format, 'png');
    assert.deepEqual([meta.width, meta.height], [224, 224]);
    const stats = await sharp(out).stats();
    assert.ok(
      stats.channels.some((c) => c.stdev > 10),
      'the heat is not uniform',
    );
    rmSync(out);
  });

  it('prints one JSON object and saves the map as .npy', async () => {
    const map = join(work, 'map.npy');
    const run = await cameras([
      'explain',
      '--input',
      INPUT,
      '--model',
      MODEL,
      '--layer',
      'layer3',
      '--class',
      '5',
      '--resolutions',
      '224,352,480',
      '--json',
      '--save-map',
      map,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(report), [
      'model',
      'layer',
      'method',
      'target',
      'output',
      'class',
      'classPerResolution',
      'probPerResolution',
      'usedResolutions',
      'empty',
      'seconds',
    ]);
    assert.equal(report.class, 5);
    assert.equal(report.layer, 'layer3');
    assert.deepEqual(report.usedResolutions, [224, 352, 480]);
    const saved = npy(map);
    assert.deepEqual(saved.shape, [224, 224]);
    // The library's map to the bit (the library's is judged against the authors' float64 map by the parity suite).
    assert.deepEqual([...saved.data], [...(await libraryMap('layer3', { classIndex: 5, resolutions: [224, 352, 480] }))]);
    rmSync(map);
  });

  it("computes EigenCAM with numpy's sign (pytorch-grad-cam's map) or, on request, along the mean activation", async () => {
    const golden = npy(resolve(FIXTURES, 'mini_resnet/baselines/cat_dog.layer3.eigencam.c5.npy'));
    const differences: number[] = [];
    for (const sign of ['numpy', 'activation']) {
      const map = join(work, `eigen-${sign}.npy`);
      const args = ['explain', '--input', INPUT, '--model', MODEL, '--layer', 'layer3', '--method', 'eigencam'];
      const run = await cameras([...args, '--eigen-sign', sign, '--json', '--save-map', map]);
      assert.equal(run.code, 0, run.stderr);
      const expected = await libraryMap('layer3', { method: 'eigencam', eigenSign: sign as EigenSign });
      assert.deepEqual([...npy(map).data], [...expected], `the library's map, ${sign} sign`);
      differences.push(difference(npy(map).data, golden.data).max);
      rmSync(map);
    }
    // The library's numpy-sign map is pytorch-grad-cam's (baselines suite, 7.2e-7): the other sign is far from it.
    assert.ok((differences[0] as number) <= 1e-5, `numpy sign: ${differences[0]}`);
    assert.ok((differences[1] as number) > 0.5, 'the mean-activation orientation mirrors this map');
    await rejects(['explain', '--input', INPUT, '--method', 'eigencam', '--eigen-sign', 'up'], /argument 'up' is invalid/);
  });

  it('--multi-scale EigenCAM takes the mean-activation sign unless --eigen-sign says otherwise (the library default)', async () => {
    const maps: Float32Array[] = [];
    for (const extra of [[], ['--eigen-sign', 'activation'], ['--eigen-sign', 'numpy']]) {
      const map = join(work, 'eigen-multi.npy');
      const args = ['explain', '--input', INPUT, '--model', MODEL, '--layer', 'layer3', '--method', 'eigencam', '--multi-scale'];
      const run = await cameras([...args, '--resolutions', '224,352', ...extra, '--json', '--save-map', map]);
      assert.equal(run.code, 0, run.stderr);
      maps.push(npy(map).data);
      rmSync(map);
    }
    assert.deepEqual([...(maps[0] as Float32Array)], [...(maps[1] as Float32Array)]);
    assert.ok(difference(maps[0] as Float32Array, maps[2] as Float32Array).max > 0.5, 'the two signs differ on this input');
  });

  it('explains a target: prob, or a contrast with another class by index', async () => {
    const base = ['explain', '--input', INPUT, '--model', MODEL, '--layer', 'layer3', '--class', '5', '--resolutions', '224,352', '--json'];
    const maps: Float32Array[] = [];
    const library: [string, Target][] = [
      ['logit', 'logit'],
      ['prob', 'prob'],
      ['contrast:3', { contrast: 3 }],
    ];
    for (const [flag, target] of library) {
      const map = join(work, 'target.npy');
      const run = await cameras([...base, '--target', flag, '--save-map', map]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(JSON.parse(run.stdout).target, flag);
      maps.push(npy(map).data);
      const expected = await libraryMap('layer3', { classIndex: 5, resolutions: [224, 352], target });
      assert.deepEqual([...npy(map).data], [...expected], `--target ${flag} is the library's target`);
      rmSync(map);
    }
    assert.ok(difference(maps[0] as Float32Array, maps[1] as Float32Array).max > 1e-3, 'the probability changes the map');
    assert.ok(difference(maps[0] as Float32Array, maps[2] as Float32Array).max > 0.05, 'a contrast changes the map');
    await rejects([...base, '--target', 'contrast:5'], /contrast class 5 is the explained class/);
    await rejects([...base, '--target', 'contrast:99'], /class 99 is out of range/);
    await rejects(
      [...base, '--target', 'entropy'],
      /unknown target 'entropy'; use logit, prob, logprob, contrast:<class> or segment:<class>/,
    );
  });

  it('refuses an option the method cannot honour, naming both', async () => {
    const base = ['explain', '--input', INPUT, '--model', MODEL, '--layer', 'layer3'];
    await rejects(
      [...base, '--method', 'scorecam', '--multi-scale'],
      /method 'scorecam' does not take option --multi-scale; it takes: --postprocess$/,
    );
    await rejects([...base, '--method', 'gradient', '--scales'], /method 'gradient' does not take option --scales/);
    await rejects(
      [...base, '--method', 'gradcam', '--resolutions', '224,352'],
      /method 'gradcam' takes --resolutions only with --multi-scale/,
    );
  });

  it('smooths any method with --smooth (seeded), and passes --samples/--seed to smoothgrad', async () => {
    const base = ['explain', '--input', INPUT, '--model', MODEL, '--layer', 'layer3', '--class', '5', '--json'];
    const maps: Float32Array[] = [];
    for (const extra of [
      ['--method', 'layercam', '--smooth', '3', '--seed', '4'],
      ['--method', 'layercam', '--smooth', '3', '--seed', '4'],
      ['--method', 'layercam'],
    ]) {
      const map = join(work, 'smooth.npy');
      const run = await cameras([...base, ...extra, '--save-map', map]);
      assert.equal(run.code, 0, run.stderr);
      maps.push(npy(map).data);
      rmSync(map);
    }
    assert.deepEqual([...(maps[0] as Float32Array)], [...(maps[1] as Float32Array)]);
    assert.ok(difference(maps[0] as Float32Array, maps[2] as Float32Array).max > 1e-3);
    assert.deepEqual(
      [...(maps[0] as Float32Array)],
      [...(await libraryMap('layer3', { method: 'layercam', classIndex: 5, smooth: { samples: 3, seed: 4 } }))],
      '--smooth and --seed reach the NoiseTunnel',
    );
    // --samples and --seed reach smoothgrad's own tunnel: the library's map with them, and not the one without.
    const smoothgrad = join(work, 'smoothgrad.npy');
    const run = await cameras([...base, '--method', 'smoothgrad', '--samples', '2', '--seed', '1', '--save-map', smoothgrad]);
    assert.equal(run.code, 0, run.stderr);
    const cli = npy(smoothgrad).data;
    rmSync(smoothgrad);
    assert.deepEqual([...cli], [...(await libraryMap('layer3', { method: 'smoothgrad', classIndex: 5, samples: 2, seed: 1 }))]);
    assert.ok(difference(cli, await libraryMap('layer3', { method: 'smoothgrad', classIndex: 5, samples: 2, seed: 2 })).max > 1e-3);
    await rejects([...base, '--method', 'gradcam', '--seed', '3'], /method 'gradcam' does not take option --seed/);
    await rejects([...base, '--method', 'smoothgrad', '--smooth', '3'], /method 'smoothgrad' already averages over noise/);
  });

  it('explains a torch.onnx.export model exported without dynamic axes at every scale, as the dynamic export', async () => {
    const maps: Float32Array[] = [];
    // One input for both: the fixed export's profile takes its declared 64 px as the input size, the dynamic one's 224.
    const tensor = join(work, 'gap-input.npy');
    await writeNpyFile(tensor, preprocess(await readImage(PHOTO), PRESETS.torchvision as (typeof PRESETS)[string], 64));
    for (const name of ['fixed_gap', 'dynamic_gap']) {
      const map = join(work, `${name}.npy`);
      const model = resolve(FIXTURES, `torch/${name}.onnx`);
      const run = await cameras([
        'explain',
        '--input',
        tensor,
        '--model',
        model,
        '--resolutions',
        '64,96,128',
        '--class',
        '1',
        '--json',
        '--save-map',
        map,
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout).usedResolutions, [64, 96, 128]);
      maps.push(npy(map).data);
      rmSync(map);
    }
    assert.ok(difference(maps[0] as Float32Array, maps[1] as Float32Array).max <= 1e-6);
    const fixed = resolve(FIXTURES, 'torch/fixed_gap.onnx');
    const out = join(work, 'fixed.compare.png');
    const compare = await cameras(['compare', PHOTO, '--model', fixed, '--methods', 'cameras,gradcam', '--out', out]);
    assert.equal(compare.code, 0, compare.stderr);
    rmSync(out);
  });

  it('refuses, naming the node, a fixed-size export whose graph hard-codes its size; runs it at that size', async () => {
    const model = resolve(FIXTURES, 'torch/fixed_view.onnx');
    await rejects(
      ['explain', PHOTO, '--model', model, '--layer', 'features', '--resolutions', '64,96', '--out', 'x.png'],
      /exported for 64 x 64 inputs and node '\/fc\/Gemm' fixes that size, so it cannot run at 96 x 96; re-export with torch\.onnx\.export\(\.\.\., dynamic_axes=.*or keep to that size: --resolutions 64$/,
    );
    const run = await cameras(['explain', PHOTO, '--model', model, '--layer', 'features', '--resolutions', '64', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const layers = await cameras(['layers', '--model', model]);
    assert.equal(layers.code, 0, layers.stderr);
    assert.match(layers.stdout, /shape at 64 px/);
    assert.match(
      layers.stdout,
      /no default layer \(no global pooling before the head, no transformer blocks\): pass one of these to explain with --layer/,
    );
  });

  it("refuses a size the model cannot take in one line, without ONNX Runtime's own log", () =>
    rejects(['explain', PHOTO, '--resolutions', '8', '--out', 'x.png'], /cannot run on a 8 x 8 input .*too small/));

  it('lists the methods with what each needs', async () => {
    const run = await cameras(['methods', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as { name: string; needs: string[]; options: string[]; flags: string[] }[];
    assert.equal(rows[0]?.name, 'cameras');
    assert.deepEqual(rows.find((r) => r.name === 'scorecam')?.needs, ['layer-activation', 'masked-forward']);
    assert.ok(rows.find((r) => r.name === 'eigencam')?.options.includes('eigenSign'));
    assert.deepEqual(rows.find((r) => r.name === 'smoothgrad')?.flags, ['--samples', '--noise', '--seed']);
  });

  it('refuses a missing image', () => rejects(['explain', 'missing.jpg'], /cannot read image missing\.jpg: ENOENT/));
  it('refuses a corrupt image', async () => {
    writeFileSync(join(work, 'broken.jpg'), 'not a jpeg at all');
    await rejects(['explain', 'broken.jpg', '--out', 'x.png'], /cannot decode image broken\.jpg .*JPEG, PNG or WebP/);
    rmSync(join(work, 'broken.jpg'));
  });
  it('refuses a missing model', () => rejects(['explain', PHOTO, '--model', 'none.onnx'], /cannot read model none\.onnx: ENOENT/));
  it('refuses a corrupt model', async () => {
    writeFileSync(join(work, 'bad.onnx'), Buffer.from([1, 2, 3, 4, 5, 250, 251]));
    await rejects(['explain', PHOTO, '--model', 'bad.onnx', '--out', 'x.png'], /bad\.onnx is not a valid ONNX model/);
    rmSync(join(work, 'bad.onnx'));
  });
  it('refuses an unknown layer and lists the nearest valid names', () =>
    rejects(
      ['explain', PHOTO, '--model', MODEL, '--layer', 'layer5', '--out', 'x.png'],
      /unknown layer 'layer5'; nearest valid names: layer\d/,
    ));
  it('refuses a class out of range', () =>
    rejects(
      ['explain', '--input', INPUT, '--model', MODEL, '--class', '10', '--save-map', 'm.npy'],
      /class 10 is out of range: the model has 10 classes \(0-9\)/,
    ));
  it('refuses a class name the model does not have, listing its labels', () =>
    rejects(
      ['explain', PHOTO, '--class', 'cat'],
      /^cameras: error: unknown class 'cat'; give an index or one of: Drawing, Hentai, Neutral, Porn, Sexy$/,
    ));
  it('refuses an unknown zoo model', () => rejects(['explain', PHOTO, '--model', 'nsfwjs:nope'], /unknown model 'nsfwjs:nope'/));
  it('refuses a tensor of the wrong shape', async () => {
    writeFileSync(join(work, 'flat.npy'), formatNpy({ data: new Float32Array(3 * 224), shape: [1, 3, 224] }));
    await rejects(
      ['explain', '--input', 'flat.npy', '--save-map', 'm.npy'],
      /input tensor has shape \[1, 3, 224\]; expected \[1, 3, H, W\]/,
    );
    rmSync(join(work, 'flat.npy'));
  });
  it('refuses a tensor that is not float32', async () => {
    const header = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
    const bytes = Buffer.concat([
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length + 1, 0]),
      Buffer.from(`${header}\n`),
      Buffer.alloc(8),
    ]);
    writeFileSync(join(work, 'ints.npy'), bytes);
    await rejects(['explain', '--input', 'ints.npy'], /holds dtype <i4; save it as float32/);
    rmSync(join(work, 'ints.npy'));
  });
  it('refuses an empty resolution list', () => rejects(['explain', PHOTO, '--resolutions', ','], /resolution list is empty/));
  it('refuses an op without a gradient rule, naming it, with exit code 3', () =>
    rejects(
      ['explain', PHOTO, '--model', modelWithElu(), '--layer', 'features', '--out', 'x.png'],
      /cannot differentiate Elu node '\/act\/Elu'/,
      3,
    ).finally(() => rmSync(join(work, 'elu.onnx'))));
  it('refuses an output in a folder that does not exist, before any work', () =>
    rejects(['explain', PHOTO, '--out', join(work, 'no/such/dir/x.png')], /cannot write .*x\.png: its folder .* does not exist/));
  it('refuses an image and --input together, and neither', async () => {
    await rejects(['explain', PHOTO, '--input', INPUT], /give either images or --input, not both/);
    await rejects(['explain'], /give an image file or --input/);
  });
});

describe('cameras models', () => {
  it('lists the zoo with its classes, default layers and the default model', async () => {
    const run = await cameras(['models']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^nsfwjs:mobilenet_v2 .*Drawing, Hentai, Neutral, Porn, Sexy.*layer out_relu, 224 px.*\(default\)$/m);
    assert.match(run.stdout, /^nsfwjs:inception_v3 .*layer mixed10, 299 px/m);
    assert.match(run.stdout, /^composite:fashion .*random resized crops.*layer features, 224 px/m);
    assert.match(run.stdout, /^composite:fashion-single-scale .*one scale.*layer features, 224 px/m);
  });

  it('explains a class given by its label', async () => {
    const run = await cameras([
      'explain',
      PHOTO,
      '--class',
      'neutral',
      '--resolutions',
      '224,324',
      '--json',
      '--save-map',
      join(work, 'l.npy'),
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { class: number }).class, 2);
    rmSync(join(work, 'l.npy'));
  });
});

describe('pictures and many inputs', () => {
  it('renders a two-class panel of one photo whose two maps differ', async () => {
    const out = join(work, 'panel.png');
    const run = await cameras(['explain', PHOTO, '--classes', 'Neutral,Drawing', '--resolutions', '224,324,424', '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /class 2 \(Neutral\)[\s\S]*class 0 \(Drawing\)/);
    const meta = await sharp(out).metadata();
    // Two rows of image | heatmap | overlay, 224 px tiles, titles and a colour bar.
    assert.equal(meta.width, 8 + 3 * (224 + 8));
    assert.ok((meta.height as number) > 2 * 224);
    // The heatmap tiles of the two rows (titles 26 px, gaps 8 px) must differ.
    const tile = (top: number) => sharp(out).extract({ left: 240, top, width: 224, height: 224 }).raw().toBuffer();
    const [first, second] = await Promise.all([tile(8 + 26), tile(8 + 26 + 224 + 8 + 26)]);
    let total = 0;
    for (let i = 0; i < first.length; i++) total += Math.abs((first[i] as number) - (second[i] as number));
    assert.ok(total / first.length > 5, `mean pixel difference ${total / first.length}`);
    rmSync(out);
  });

  it('explains a folder into one picture per image, with JSON lines', async () => {
    const folder = join(work, 'photos');
    const pictures = join(work, 'maps');
    mkdirSync(folder);
    mkdirSync(pictures);
    copyFileSync(PHOTO, join(folder, 'a.png'));
    await sharp(PHOTO).resize(160, 120).jpeg().toFile(join(folder, 'b.jpg'));
    const run = await cameras(['explain', folder, '--out-dir', pictures, '--json', '--resolutions', '224,324']);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { image: string; class: number });
    assert.deepEqual(
      lines.map((l) => l.image),
      [join(folder, 'a.png'), join(folder, 'b.jpg')],
    );
    assert.deepEqual(readdirSync(pictures).sort(), ['a.cameras.png', 'b.cameras.png']);
    assert.deepEqual(
      [(await sharp(join(pictures, 'b.cameras.png')).metadata()).width, (await sharp(join(pictures, 'b.cameras.png')).metadata()).height],
      [160, 120],
    );
    rmSync(folder, { recursive: true });
    rmSync(pictures, { recursive: true });
  });

  it('goes on past a bad image in a folder, creates --out-dir, skips its own outputs, times each image alone', async () => {
    const folder = join(work, 'mixed');
    const pictures = join(work, 'new/maps');
    mkdirSync(folder);
    copyFileSync(PHOTO, join(folder, 'a.png'));
    writeFileSync(join(folder, 'b.jpg'), 'not a jpeg');
    copyFileSync(PHOTO, join(folder, 'c.png'));
    copyFileSync(PHOTO, join(folder, 'a.cameras.png')); // written by earlier runs
    copyFileSync(PHOTO, join(folder, 'a.gradcam.png'));
    const began = performance.now();
    const run = await cameras(['explain', folder, '--out-dir', pictures, '--json', '--resolutions', '224']);
    const wall = (performance.now() - began) / 1000;
    assert.equal(run.code, 2, 'a failure gives a non-zero exit at the end');
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { image: string; error?: string; seconds?: number });
    assert.deepEqual(
      lines.map((l) => [basename(l.image), l.error === undefined]),
      [
        ['a.png', true],
        ['b.jpg', false],
        ['c.png', true],
      ],
    );
    assert.match(lines[1]?.error ?? '', /cannot decode image/);
    assert.deepEqual(readdirSync(pictures).sort(), ['a.cameras.png', 'c.cameras.png']);
    // Not on a terminal, each image's progress is a line of its own; the rest is the failure and the count.
    const all = run.stderr.trim().split('\n');
    assert.deepEqual(
      all.filter((l) => l.startsWith('explain ')),
      ['explain 1/3 a.png', 'explain 2/3 b.jpg', 'explain 3/3 c.png'],
    );
    const stderr = all.filter((l) => !l.startsWith('explain '));
    assert.equal(stderr.length, 2, run.stderr);
    assert.match(stderr[0] as string, /b\.jpg: cannot decode image/);
    assert.match(stderr[1] as string, /1 of 3 images failed/);
    // Each image reports its own time: times counted from the process start would add up past the wall time.
    const times = lines.filter((l) => l.seconds !== undefined).map((l) => l.seconds as number);
    assert.ok(times.reduce((a, b) => a + b, 0) < wall, `${times} vs ${wall} s`);
    // Another method's pictures are named after it (they were all <name>.cameras.png), and NoiseTunnel says so.
    const gradcam = await cameras(['explain', join(folder, 'c.png'), '--method', 'gradcam', '--smooth', '2', '--out-dir', pictures]);
    assert.equal(gradcam.code, 0, gradcam.stderr);
    assert.ok(existsSync(join(pictures, 'c.gradcam.png')));
    assert.match(gradcam.stdout, /gradcam at 224 px, smoothed over 2 noisy copies \(NoiseTunnel\) in/);
    rmSync(folder, { recursive: true });
    rmSync(join(work, 'new'), { recursive: true });
  });

  it('refuses garbage in: a NaN or infinite input, a layer with no spatial map, an empty layer name', async () => {
    const input = npy(INPUT);
    input.data[7] = Number.NaN;
    writeFileSync(join(work, 'nan.npy'), formatNpy(input));
    await rejects(
      ['explain', '--input', join(work, 'nan.npy'), '--model', MODEL, '--json'],
      /input tensor has a non-finite value \(NaN\) at index 7/,
    );
    input.data[7] = Number.POSITIVE_INFINITY;
    writeFileSync(join(work, 'nan.npy'), formatNpy(input));
    await rejects(
      ['explain', '--input', join(work, 'nan.npy'), '--model', MODEL, '--json'],
      /input tensor has a non-finite value \(Infinity\)/,
    );
    rmSync(join(work, 'nan.npy'));
    await rejects(['explain', PHOTO, '--layer', 'dense_1', '--out', 'x.png'], /output has shape \[1, 256\], not a spatial map/);
    await rejects(['explain', PHOTO, '--layer', '', '--out', 'x.png'], /the layer name is empty/);
  });

  it('writes the format --out names, refuses flags that would do nothing, lists every zoo name when a name is unknown', async () => {
    const jpeg = join(work, 'o.jpg');
    const run = await cameras(['explain', PHOTO, '--resolutions', '224', '--out', jpeg]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await sharp(jpeg).metadata()).format, 'jpeg');
    rmSync(jpeg);
    await rejects(['explain', PHOTO, '--out', 'o.gif'], /--out o\.gif: name a \.png, \.jpg or \.webp file/);
    await rejects(['explain', PHOTO, '--top', '2', '--class', '1'], /give --top or --class\/--classes, not both/);
    await rejects(['explain', PHOTO, '--weights', 'w.safetensors'], /--weights is the state dict of a torchvision:<arch> model/);
    await rejects(['explain', PHOTO, '--model', 'nope:thing'], /unknown model 'nope:thing'.*torchvision:resnet50.*onnx:resnet50-v1-7/);
    const help = await cameras(['compare', '--help']);
    assert.match(help.stdout.replace(/\s+/g, ' '), /\(default: cameras,gradcam,gradcampp,layercam,normgrad,gradient,smoothgrad\)/);
    const graphModel = join(work, 'graph');
    mkdirSync(graphModel);
    writeFileSync(
      join(graphModel, 'model.json'),
      JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: [] }),
    );
    await rejects(
      ['explain', PHOTO, '--model', join(graphModel, 'model.json'), '--out', 'x.png'],
      /is a TF\.js graph model; only TF\.js layers models convert/,
    );
    rmSync(graphModel, { recursive: true });
  });

  it('takes ImageNet labels for a plain 1000-class model, saying they are assumed', async () => {
    const g = OnnxGraph.empty('thousand', 13);
    g.addInput('input', DataType.FLOAT, [1, 3, 'h', 'w']);
    const w = g.addConstant(
      'w',
      Float32Array.from({ length: 4 * 27 }, (_, i) => Math.sin(i)),
      [4, 3, 3, 3],
    );
    g.addNode('Conv', ['input', w], { pads: [1, 1, 1, 1] }, { outputs: ['features'], name: '/features/Conv' });
    const [relu] = g.addNode('Relu', ['features'], {}, { name: '/relu/Relu' });
    const [pooled] = g.addNode('GlobalAveragePool', [relu as string]);
    const [flat] = g.addNode('Flatten', [pooled as string]);
    const fc = g.addConstant(
      'fc',
      Float32Array.from({ length: 1000 * 4 }, (_, i) => Math.cos(i)),
      [1000, 4],
    );
    g.addNode('Gemm', [flat as string, fc], { transB: 1 }, { outputs: ['logits'] });
    g.addOutput('logits');
    const model = join(work, 'thousand.onnx');
    writeFileSync(model, g.toBytes());
    const run = await cameras([
      'explain',
      PHOTO,
      '--model',
      model,
      '--class',
      'tabby',
      '--resolutions',
      '224',
      '--out',
      join(work, 't.png'),
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /class 281 \(tabby, ImageNet label assumed\)/);
    rmSync(model);
    rmSync(join(work, 't.png'));
  });

  it('says so when a tensor run writes no file', async () => {
    const run = await cameras(['explain', '--input', INPUT, '--model', MODEL, '--resolutions', '224']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /no file written: an --input tensor has no picture to draw on; add --save-map/);
  });

  it('refuses more threads than cores', () =>
    rejects(['explain', PHOTO, '--threads', String(availableParallelism() + 1)], /this machine has \d+ cores; give at most/));

  it('compares two models side by side', async () => {
    const out = join(work, 'models.png');
    const run = await cameras([
      'explain',
      PHOTO,
      '--models',
      'nsfwjs:mobilenet_v2,nsfwjs:inception_v3',
      '--resolutions',
      '299,399',
      '--out',
      out,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /out_relu of nsfwjs:mobilenet_v2[\s\S]*mixed10 of nsfwjs:inception_v3/);
    // Each model's row has its own time (both rows had the image's total); which is slower is not asserted: on a
    // loaded 2-core machine both rounded to 0.2 s (speed lives in benchmarks, not tests).
    const times = [...run.stdout.matchAll(/ in (\d+\.\d+) s$/gm)].map((m) => Number(m[1]));
    assert.equal(times.length, 2);
    assert.ok(((await sharp(out).metadata()).height as number) > 2 * 224);
    rmSync(out);
  });

  it('refuses an image over the pixel limit, naming the limit', async () => {
    const big = join(work, 'big.png');
    await sharp({ create: { width: 1200, height: 1000, channels: 3, background: { r: 9, g: 9, b: 9 } } })
      .png()
      .toFile(big);
    const run = await cameras(['explain', big, '--out', join(work, 'x.png')], work, { CAMERAS_MAX_PIXELS: '1000000' });
    rmSync(big);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^cameras: error: image .*big\.png is larger than the limit of 1 megapixels; downscale it first/);
    assert.ok(!existsSync(join(work, 'x.png')));
  });

  it('refuses a TF.js model with a layer it cannot convert, naming the layer', async () => {
    const folder = join(work, 'tfjs');
    mkdirSync(folder);
    const json = {
      modelTopology: {
        class_name: 'Sequential',
        config: {
          name: 's',
          layers: [
            { class_name: 'InputLayer', config: { name: 'in', batch_input_shape: [null, 8, 8, 3] } },
            { class_name: 'UpSampling2D', config: { name: 'grow', size: [2, 2] } },
          ],
        },
      },
      weightsManifest: [{ paths: [], weights: [] }],
    };
    writeFileSync(join(folder, 'model.json'), JSON.stringify(json));
    const run = await cameras(['explain', PHOTO, '--model', join(folder, 'model.json'), '--out', join(work, 'x.png')]);
    rmSync(folder, { recursive: true });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^cameras: error: the TF\.js model has a layer we cannot convert: UpSampling2D 'grow'/);
  });
});

describe('torchvision weights', () => {
  it('builds torchvision:vgg16 from a state dict and names ImageNet classes', async () => {
    const weights = resolve(FIXTURES, 'torch/vgg16.safetensors');
    const run = await cameras([
      'explain',
      PHOTO,
      '--model',
      'torchvision:vgg16',
      '--weights',
      weights,
      '--class',
      'tiger shark',
      '--resolutions',
      '224,320',
      '--quiet',
      '--save-map',
      join(work, 'v.npy'),
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(npy(join(work, 'v.npy')).shape, [224, 224]);
    rmSync(join(work, 'v.npy'));
  });

  it('asks for --weights when a torchvision model has none', () =>
    rejects(
      ['explain', PHOTO, '--model', 'torchvision:resnet50'],
      /torchvision:resnet50 is built from your weights: add --weights resnet50\.safetensors/,
    ));
});

describe('models by URL', () => {
  it('downloads an .onnx URL once into the cache, then works without the server', async () => {
    const served = readFileSync(MODEL);
    let requests = 0;
    const server = createServer((request, response) => {
      requests++;
      if (request.url !== '/models/mini.onnx') {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { 'content-length': served.length }).end(served);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/mini.onnx`;
    const args = ['explain', '--input', INPUT, '--model', url, '--layer', 'layer4', '--resolutions', '224,352', '--json'];
    const first = await cameras(args);
    assert.equal(first.code, 0, first.stderr);
    const missing = await cameras(['explain', '--input', INPUT, '--model', url.replace('mini', 'absent'), '--json']);
    await new Promise<void>((done) => server.close(() => done()));
    const second = await cameras(args);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(requests, 2, 'one download, one 404');
    assert.equal((JSON.parse(second.stdout) as { class: number }).class, (JSON.parse(first.stdout) as { class: number }).class);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^cameras: error: cannot download http:\/\/127\.0\.0\.1:\d+\/models\/absent\.onnx \(HTTP 404\)/);
  });

  it('never caches a bad download, re-fetches a corrupt cache entry, and gives up on a silent server', async () => {
    const served = readFileSync(MODEL);
    let mode: 'html' | 'short' | 'silent' | 'model' = 'html';
    let requests = 0;
    const server = createServer((_request, response) => {
      requests++;
      if (mode === 'html') response.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Sign in</body></html>');
      else if (mode === 'short') {
        response.writeHead(200, { 'content-length': served.length });
        response.write(served.subarray(0, 1000));
        setTimeout(() => response.destroy(), 50);
      } else if (mode === 'model') response.writeHead(200, { 'content-length': served.length }).end(served);
      // silent: never answers
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bad/mini.onnx`;
    const args = ['explain', '--input', INPUT, '--model', url, '--layer', 'layer4', '--resolutions', '224', '--json'];
    try {
      await rejects(args, /the download of http:.*mini\.onnx is not a usable model: .*is not a valid ONNX model/);
      mode = 'short';
      await rejects(args, /the download of http:.*mini\.onnx (was cut short|broke off)/);
      mode = 'silent';
      await rejects([...args], /no answer in 0\.3 s/, 2, { CAMERAS_DOWNLOAD_TIMEOUT_MS: '300' });
      mode = 'model';
      const good = await cameras(args);
      assert.equal(good.code, 0, good.stderr);
      // Truncate the cached copy: the next run fetches it again instead of failing for good.
      // (Every cached mini.onnx: an earlier test cached one from another address.)
      const downloads = join(cache, 'downloads');
      const cachedFiles = readdirSync(downloads)
        .filter((f) => f.endsWith('mini.onnx'))
        .map((f) => join(downloads, f));
      for (const file of cachedFiles) writeFileSync(file, readFileSync(file).subarray(0, 500));
      const before = requests;
      const again = await cameras(args);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(requests, before + 1, 'fetched again');
      assert.ok(cachedFiles.some((file) => readFileSync(file).length === served.length));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    }
  });

  it('keeps optimised sessions between runs: the same map from the cached files, a broken one rebuilt', async () => {
    const sessions = join(cache, 'sessions');
    rmSync(sessions, { recursive: true, force: true });
    const map = async (name: string, env: Record<string, string> = {}) => {
      const out = join(work, `${name}.npy`);
      const args = ['explain', PHOTO, '--model', resolve(ROOT, 'assets/models/mini_resnet.onnx'), '--resolutions', '64,96'];
      const run = await cameras([...args, '--save-map', out, '--quiet'], ROOT, env);
      assert.equal(run.code, 0, run.stderr);
      return readFileSync(out);
    };
    const first = await map('fresh');
    const files = () => readdirSync(sessions);
    const kinds = () => files().map((f) => f.replace(/^[0-9a-f]+/, '').replace(/^\.[0-9]+-[0-9a-z]+\.weights$/, '.weights'));
    assert.deepEqual(kinds().sort(), ['.json', '.onnx', '.outline.onnx', '.weights'], 'an optimised graph, its weights, names, outline');
    assert.ok((await map('cached')).equals(first), 'the cached session gives the same map');
    const named = (end: string) => join(sessions, files().find((f) => f.endsWith(end) && !f.endsWith('.outline.onnx')) as string);
    // Replaced weights are removed once an hour old (a concurrent writer's are younger): these are made older.
    const weights = named('.weights');
    utimesSync(weights, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
    writeFileSync(named('.onnx'), 'not a model');
    assert.ok((await map('rebuilt')).equals(first), 'a broken cached file is built again');
    assert.deepEqual(kinds().sort(), ['.json', '.onnx', '.outline.onnx', '.weights'], 'the replaced weights removed');
    assert.notEqual(named('.weights'), weights);
    writeFileSync(named('.weights'), readFileSync(named('.weights')).subarray(0, 1000));
    assert.ok((await map('weights rebuilt')).equals(first), 'cut-short weights are built again');
    assert.deepEqual(kinds().sort(), ['.json', '.onnx', '.outline.onnx', '.weights', '.weights'], 'the young replaced weights kept');
    writeFileSync(join(sessions, files().find((f) => f.endsWith('.outline.onnx')) as string), 'not an outline');
    assert.ok((await map('outline rebuilt')).equals(first), 'a broken outline is made again from the model');
    assert.ok((await map('off', { CAMERAS_SESSION_CACHE: '0' })).equals(first));
  });

  it('reads the bundled nsfwjs models from the ONNX files the build made (nothing converted, nothing cached)', async () => {
    const run = await cameras(['explain', PHOTO, '--json', '--resolutions', '224']);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(!existsSync(join(cache, 'nsfwjs_mobilenet_v2.onnx')), 'no conversion into the cache');
    // The shipped file is what a fresh conversion of the nsfwjs package gives, byte for byte.
    for (const name of ['nsfwjs:mobilenet_v2', 'nsfwjs:inception_v3'])
      assert.ok(
        readFileSync(bundledModelPath(name)).equals(Buffer.from(await convertNsfwjs(name))),
        `${name}: the shipped file is a fresh conversion`,
      );
  });

  it('refuses an unreachable URL in one line', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((done) => probe.close(() => done()));
    await rejects(
      ['explain', PHOTO, '--model', `http://127.0.0.1:${port}/nothing.onnx`, '--out', 'x.png'],
      /^cameras: error: cannot download http:\/\/127\.0\.0\.1:\d+\/nothing\.onnx \(ECONNREFUSED\)/,
    );
  });
});

describe('cameras attack', () => {
  it('writes the adversarial PNG that, re-read and preprocessed, is the target class; the plain one beside it; a summary', async () => {
    const out = join(work, 'attack');
    const image = join(work, 'bag.jpg');
    copyFileSync(resolve(ROOT, 'bench/composite/composite_002.jpg'), image);
    const args = [
      'attack',
      image,
      '--model',
      'composite:fashion-single-scale',
      '--out-dir',
      out,
      '--confidence',
      '0.99',
      '--iterations',
      '400',
    ];
    const run = await cameras(args);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /success: plain 1\/1, guided 1\/1; mean L2 reduction where both succeed/);
    const record = JSON.parse(readFileSync(join(out, 'attack.jsonl'), 'utf8').trim()) as {
      targetClass: string;
      guided: { success: boolean; l2: number };
      plain: { success: boolean; l2: number };
    };
    assert.ok(record.guided.success && record.plain.success);
    for (const name of ['bag.adversarial.png', 'bag.plain.png', 'bag.perturbation.png', 'bag.attack.png'])
      assert.ok(existsSync(join(out, name)), name);
    // Re-read the written file on our own and classify it: the least likely class of the clean image, p >= 0.99.
    const explainer = await createExplainer({ model: 'composite:fashion-single-scale', threads: 2 });
    try {
      const preset = PRESETS.torchvision as (typeof PRESETS)[string];
      const probabilities = async (path: string) =>
        softmax((await explainer.forward([normalise(resizeLinearUint8(await readImage(path), 224, 224), preset)]))[0] as Float32Array);
      const clean = await probabilities(image);
      const target = clean.indexOf(Math.min(...clean));
      assert.equal(record.targetClass.split(' ')[0], String(target));
      assert.ok(((await probabilities(join(out, 'bag.adversarial.png')))[target] as number) >= 0.99);
      assert.ok(((await probabilities(join(out, 'bag.plain.png')))[target] as number) >= 0.99);
    } finally {
      await explainer.dispose();
    }
    // An image that cannot be read fails alone, in one line, and the run ends with the usage code.
    const broken = join(work, 'broken-attack');
    mkdirSync(broken);
    writeFileSync(join(broken, 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]));
    const failing = await cameras([
      'attack',
      broken,
      '--model',
      'composite:fashion-single-scale',
      '--out-dir',
      join(work, 'attack-broken'),
      '--quiet',
    ]);
    assert.equal(failing.code, 2);
    assert.match(failing.stderr, /^failed: cannot decode image .*broken\.jpg/m);
    assert.equal(readFileSync(join(work, 'attack-broken/attack.jsonl'), 'utf8'), '');
    await rejects([...args, '--target', 'unicorn'], /unknown class 'unicorn'/);
    await rejects([...args, '--confidence', '2'], /--confidence.*above 0 and at most 1/);
    await rejects([...args, '--saliency', 'nothing'], /--saliency/);
  });
});

describe('cameras eval', () => {
  it('scores methods on an annotated folder, appends JSON lines, resumes where it stopped, writes the summary', async () => {
    const data = join(work, 'bench');
    const results = join(work, 'eval');
    mkdirSync(data);
    for (const name of ['composite_000', 'composite_001', 'composite_002']) {
      copyFileSync(resolve(ROOT, `bench/composite/${name}.jpg`), join(data, `${name}.jpg`));
      copyFileSync(resolve(ROOT, `bench/composite/${name}.xml`), join(data, `${name}.xml`));
    }
    const args = ['eval', data, '--model', 'composite:fashion-single-scale', '--methods', 'gradcam,gradient', '--out-dir', results];
    const first = await cameras([...args, '--metrics', 'pointing,density', '--limit', '2']);
    assert.equal(first.code, 0, first.stderr);
    // The first line records the run's settings; then one line per (image, class, method).
    const lines = () => readFileSync(join(results, 'results.jsonl'), 'utf8').trim().split('\n').slice(1);
    const before = lines();
    assert.equal(before.length, 4);
    await rejects([...args, '--metrics', 'pointing'], /results\.jsonl was made with other settings/);
    // A line cut short by a stop is done again, and the next record still starts its own line.
    writeFileSync(join(results, 'results.jsonl'), `${readFileSync(join(results, 'results.jsonl'), 'utf8')}{"image":"cut`);
    const second = await cameras([...args, '--metrics', 'pointing,density']);
    assert.equal(second.code, 0, second.stderr);
    const after = lines().filter((l) => !l.startsWith('{"image":"cut'));
    assert.equal(after.length, 6, 'only the new image was scored');
    assert.deepEqual(after.slice(0, 4), before);
    assert.ok(
      after.every((l) => JSON.parse(l)),
      'every record whole',
    );
    // Each record holds the scores of its own saved map: scored again here from the map, they are equal.
    const explainer = await createExplainer({ model: 'composite:fashion-single-scale', threads: 2 });
    try {
      for (const line of after.slice(4)) {
        const record = JSON.parse(line) as { image: string; class: string; method: string; pointing: number; difficult: boolean };
        const stem = `${basename(record.image, '.jpg')}.${record.method}.`;
        const saved = readdirSync(join(results, 'maps')).find((f) => f.startsWith(stem) && f.endsWith('.npy')) as string;
        const map = npy(join(results, 'maps', saved));
        const tensor = explainer.preprocess(await readImage(join(data, record.image)));
        const annotation = parseVoc(readFileSync(join(data, record.image.replace('.jpg', '.xml')), 'utf8'), record.image);
        const expected = await scorePair(
          explainer,
          tensor,
          { map: map.data, height: 224, width: 224, classIndex: explainer.profile.labels?.indexOf(record.class) } as ExplainResult,
          { annotation, className: record.class, metrics: ['pointing', 'density'], tolerance: 15, annotatedClass: false },
        );
        assert.deepEqual(
          Object.fromEntries(Object.keys(expected).map((k) => [k, (record as unknown as Record<string, unknown>)[k]])),
          expected,
          line,
        );
        assert.equal(record.difficult, false, 'one object per composite image: no distractor class, so not difficult');
      }
    } finally {
      await explainer.dispose();
    }
    const summary = JSON.parse(readFileSync(join(results, 'summary.json'), 'utf8')) as {
      method: string;
      pairs: number;
      pointing: number;
    }[];
    assert.deepEqual(
      summary.map((s) => [s.method, s.pairs]),
      [
        ['gradcam', 3],
        ['gradient', 3],
      ],
    );
    assert.match(readFileSync(join(results, 'summary.csv'), 'utf8'), /^method,pointing,pointing \(difficult\),rho\+,rho-,pairs\n/);
    assert.match(second.stdout, /3 images, \d+ classes/);
    // composite_002 is a bag the model takes for a t-shirt: insertion and deletion follow the model's class, or with
    // --annotated-class the bag; each record is scorePair's of its saved map with that choice.
    const bag = join(work, 'bag-only');
    mkdirSync(bag);
    for (const ext of ['jpg', 'xml'])
      copyFileSync(resolve(ROOT, `bench/composite/composite_002.${ext}`), join(bag, `composite_002.${ext}`));
    const scored: Record<string, number>[] = [];
    for (const annotated of [false, true]) {
      const out = join(work, `eval-bag-${annotated}`);
      const flags = [
        'eval',
        bag,
        '--model',
        'composite:fashion-single-scale',
        '--methods',
        'gradcam',
        '--metrics',
        'insdel,confidence',
        '--out-dir',
        out,
      ];
      const run = await cameras(annotated ? [...flags, '--annotated-class'] : flags);
      assert.equal(run.code, 0, run.stderr);
      const record = JSON.parse(readFileSync(join(out, 'results.jsonl'), 'utf8').trim().split('\n')[1] as string) as Record<string, number>;
      const saved = readdirSync(join(out, 'maps')).find((f) => f.endsWith('.npy')) as string;
      const scorer = await createExplainer({ model: 'composite:fashion-single-scale', threads: 2 });
      try {
        const expected = await scorePair(
          scorer,
          scorer.preprocess(await readImage(join(bag, 'composite_002.jpg'))),
          {
            map: npy(join(out, 'maps', saved)).data,
            height: 224,
            width: 224,
            classIndex: scorer.profile.labels?.indexOf('bag'),
          } as ExplainResult,
          {
            annotation: parseVoc(readFileSync(join(bag, 'composite_002.xml'), 'utf8'), 'bag'),
            className: 'bag',
            metrics: ['insdel', 'confidence'],
            tolerance: 15,
            annotatedClass: annotated,
          },
        );
        for (const key of ['deletion', 'insertion', 'confidence'])
          assert.equal(record[key], expected[key], `${key}, --annotated-class ${annotated}`);
      } finally {
        await scorer.dispose();
      }
      scored.push(record);
      rmSync(out, { recursive: true });
    }
    assert.notEqual(scored[0]?.deletion, scored[1]?.deletion, '--annotated-class changes the class followed');
    rmSync(bag, { recursive: true });
    rmSync(data, { recursive: true });
    rmSync(results, { recursive: true });
    await rejects(['eval', work, '--model', 'composite:fashion-single-scale'], /has no VOC annotations/);
  });
});

describe('cameras sanity', () => {
  it('writes the grid of randomised maps and one JSON line per method and depth', async () => {
    const out = join(work, 'sanity.png');
    const args = ['sanity', PHOTO, '--model', MODEL, '--layer', 'layer3', '--methods', 'gradcam,gradient', '--depths', '1,13'];
    const run = await cameras([...args, '--out', out, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { method: string; depth: number; spearmanAbs: number; ssim: number });
    assert.deepEqual(
      lines.map((l) => [l.method, l.depth]),
      [
        ['gradcam', 1],
        ['gradient', 1],
        ['gradcam', 13],
        ['gradient', 13],
      ],
    );
    const picture = await sharp(out).metadata();
    assert.ok((picture.width as number) > 224 * 4 && (picture.height as number) > 224 * 2);
    assert.match(readFileSync(join(work, 'sanity.curves.svg'), 'utf8'), /^<svg[\s\S]*Spearman rank correlation[\s\S]*<\/svg>$/);
    assert.match(
      readFileSync(join(work, 'sanity.html'), 'utf8'),
      /<table>[\s\S]*<svg[\s\S]*<img alt="the maps[^"]*" src="data:image\/png;base64,/,
    );
    for (const file of [out, join(work, 'sanity.curves.svg'), join(work, 'sanity.html')]) rmSync(file);
    await rejects([...args, '--depths', '1,99', '--out', 'x.png'], /depth 99 is not between 1 and 13/);
  });
});

describe('cameras compare', () => {
  it('writes a grid with one non-uniform heat tile per method', async () => {
    // The issue's photo when ../shared is there, else the bundled one.
    const photo = existsSync(resolve(SHARED, 'images/dog.jpg')) ? resolve(SHARED, 'images/dog.jpg') : PHOTO;
    const methods = [
      'cameras',
      'gradcam',
      'gradcampp',
      'hirescam',
      'xgradcam',
      'layercam',
      'gradcam_elementwise',
      'normgrad',
      'gradient',
      'gradient_x_input',
      'smoothgrad',
      'integrated_gradients',
    ];
    const out = join(work, 'compare.png');
    const run = await cameras(['compare', photo, '--methods', methods.join(','), '--out', out]);
    assert.equal(run.code, 0, run.stderr);
    const meta = await sharp(photo).metadata();
    const tileWidth = Math.round((224 * (meta.width as number)) / (meta.height as number));
    for (const [row, method] of methods.entries()) {
      const top = 8 + 26 + row * (224 + 8 + 26);
      const stats = await sharp(out)
        .extract({ left: 8 + tileWidth + 8, top, width: tileWidth, height: 224 })
        .stats();
      assert.ok(
        stats.channels.some((c) => c.stdev > 8),
        `${method}: the heat tile is uniform`,
      );
    }
    rmSync(out);
  });
});

describe('cameras explain on a dense output (a segmenter)', () => {
  const seg = resolve(FIXTURES, 'segmentation');
  const model = resolve(seg, 'tiny_seg.onnx');
  const input = resolve(seg, 'input.npy');
  const base = ['explain', '--input', input, '--model', model, '--layer', 'backbone', '--method', 'gradcam', '--json'];

  it('explains a region by --target segment:<class>[:<mask.png>] and another output by --output, as the library does', async () => {
    const mask = join(work, 'region.png');
    const rectangle = new Uint8Array(96 * 96);
    for (let y = 20; y < 70; y++) for (let x = 10; x < 60; x++) rectangle[y * 96 + x] = 255;
    await sharp(Buffer.from(rectangle), { raw: { width: 96, height: 96, channels: 1 } })
      .png()
      .toFile(mask);
    const explainer = await createExplainer({ model: new Uint8Array(readFileSync(model)), layer: 'backbone', threads: 2 });
    try {
      const tensor = npy(input);
      const cases: [string[], Parameters<typeof explainer.explain>[1], string][] = [
        [['--target', 'segment:0'], { method: 'gradcam', target: { segment: 0 } }, 'out'],
        [
          ['--target', `segment:0:${mask}`],
          { method: 'gradcam', target: { segment: 0, mask: { data: rectangle, width: 96, height: 96 } } },
          'out',
        ],
        [['--target', 'segment:0', '--output', 'aux'], { method: 'gradcam', target: { segment: 0 }, output: 'aux' }, 'aux'],
      ];
      for (const [flags, options, output] of cases) {
        const saved = join(work, 'region.npy');
        const run = await cameras([...base, ...flags, '--save-map', saved]);
        assert.equal(run.code, 0, run.stderr);
        const report = JSON.parse(run.stdout) as Record<string, unknown>;
        assert.equal(report.output, output);
        assert.equal(report.class, 0);
        assert.equal(report.classPerResolution, undefined, 'a segmenter has no class per resolution');
        const library = await explainer.explain(tensor, options);
        assert.equal(report.target, library.target);
        assert.deepEqual([...npy(saved).data], [...library.map], flags.join(' '));
        rmSync(saved);
      }
    } finally {
      await explainer.dispose();
      rmSync(mask);
    }
  });

  it('refuses a classifier target on a dense output, an unknown output and a missing mask, in one line', async () => {
    await rejects(base, /output 'out' is a dense \[batch, K, H, W\] map; explain a region of it: target segment:<class>/);
    await rejects([...base, '--target', 'segment:0', '--output', 'logits'], /the model has no output 'logits'; its outputs: out, aux/);
    await rejects([...base, '--target', 'segment:0:nowhere.png'], /cannot read mask nowhere\.png: ENOENT/);
    await rejects([...base, '--target', 'segment:7'], /class 7 is out of range: the model has 4 classes/);
  });
});

describe('refusals that leave nothing behind (an unreachable Redis, a bad model, a class the model lacks)', () => {
  /** A loopback port where nothing listens. */
  async function deadPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    await new Promise((done) => server.close(done));
    return port;
  }

  // Before the fix batch and eval hung silently and the worker printed the error but never exited: the timeout fails that.
  it('batch, eval, worker and batch --status fail in one line when nothing answers at --redis, and write nothing', {
    timeout: 60_000,
  }, async () => {
    const redis = `redis://127.0.0.1:${await deadPort()}`;
    const started = performance.now();
    const pattern = new RegExp(
      `cannot reach Redis at ${redis.replace(/[/.]/g, '\\$&')} \\(ECONNREFUSED\\); start redis-server or fix --redis`,
    );
    await rejects(['batch', PHOTO, '--model', MODEL, '--redis', redis, '--out-dir', join(work, 'queued')], pattern);
    await rejects(
      [
        'eval',
        resolve(ROOT, 'bench/composite'),
        '--model',
        'composite:fashion-single-scale',
        '--limit',
        '1',
        '--redis',
        redis,
        '--out-dir',
        join(work, 'queued-eval'),
      ],
      pattern,
    );
    await rejects(['worker', '--redis', redis], pattern);
    await rejects(['batch', '--status', '--redis', redis], pattern);
    assert.ok(performance.now() - started < 30_000, 'each within seconds, not a hang');
  });

  it('batch refuses a model that does not parse up front, once; eval refuses a class the model lacks; neither makes its out-dir', async () => {
    const empty = join(work, 'empty.onnx');
    writeFileSync(empty, '');
    const before = new Set(readdirSync(work));
    await rejects(
      ['batch', PHOTO, '--model', empty, '--methods', 'cameras,gradcam', '--out-dir', join(work, 'never')],
      /empty\.onnx is not a valid ONNX model/,
    );
    await rejects(
      ['eval', resolve(ROOT, 'bench/composite'), '--limit', '1', '--out-dir', join(work, 'never-eval')],
      /class 'ankle_boot' of .* is not one of the model's labels/,
    );
    assert.deepEqual(new Set(readdirSync(work)), before);
    rmSync(empty);
  });
});

describe('Ctrl-C on a long command says what is done and how to resume', () => {
  /** Starts a command, interrupts it once `ready` shows on stderr, and gives what it said and its exit code. */
  function interrupted(args: string[], ready: RegExp): Promise<{ code: number | null; stderr: string }> {
    return new Promise((done) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: work, env: { ...process.env, CAMERAS_CACHE_DIR: cache } });
      let stderr = '';
      let sent = false;
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (!sent && ready.test(stderr)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('close', (code) => done({ code, stderr }));
    });
  }

  it('batch and eval exit 130 with the count done and the way to resume; a rerun skips what was done', { timeout: 120_000 }, async () => {
    const data = join(work, 'interrupted');
    mkdirSync(data);
    for (let i = 0; i < 6; i++)
      for (const ext of ['jpg', 'xml'])
        copyFileSync(resolve(ROOT, `bench/composite/composite_00${i}.${ext}`), join(data, `composite_00${i}.${ext}`));
    const out = join(work, 'interrupted-out');
    const batch = ['batch', data, '--model', 'composite:fashion-single-scale', '--methods', 'gradcam,cameras', '--out-dir', out];
    const stopped = await interrupted(batch, /^batch 2\/12 /m);
    assert.equal(stopped.code, 130, stopped.stderr);
    const said = /stopped after (\d+) of 12 jobs; their files are whole in .*interrupted-out: run the same command again to resume/.exec(
      stopped.stderr,
    );
    assert.ok(said, stopped.stderr);
    const resumed = await cameras(batch);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`12 jobs: ${12 - Number(said[1])} run, ${said[1]} already done, 0 failed`));
    const evalArgs = [
      'eval',
      data,
      '--model',
      'composite:fashion-single-scale',
      '--methods',
      'gradcam',
      '--metrics',
      'pointing',
      '--out-dir',
      join(work, 'interrupted-eval'),
    ];
    const evalStopped = await interrupted(evalArgs, /^eval 2\/6 /m);
    assert.equal(evalStopped.code, 130, evalStopped.stderr);
    assert.match(
      evalStopped.stderr,
      /stopped after \d+ of 6 pairs; the scored ones are kept in .*results\.jsonl: run the same command again to resume/,
    );
    rmSync(data, { recursive: true });
    rmSync(out, { recursive: true });
    rmSync(join(work, 'interrupted-eval'), { recursive: true });
  });
});

describe('limits: what cannot be meant is refused, in one line, before any work', () => {
  it('refuses counts, weights and noise past their documented caps, --top past the classes, a run past the memory budget', async () => {
    const base = ['explain', '--input', INPUT, '--model', MODEL, '--layer', 'layer3'];
    await rejects([...base, '--method', 'smoothgrad', '--samples', '100000000'], /--samples.*expected at most 10000/);
    await rejects([...base, '--method', 'integrated_gradients', '--samples', '0'], /--samples.*expected a positive integer/);
    await rejects([...base, '--method', 'smoothgrad', '--noise', '1e308'], /--noise.*expected at most 10/);
    await rejects([...base, '--method', 'gradcam', '--smooth', '20000'], /--smooth.*expected at most 10000/);
    await rejects([...base, '--top', '99'], /--top 99: the model has 10 classes; give at most 10/);
    const attack = ['attack', PHOTO, '--model', MODEL, '--out-dir', join(work, 'never-attack')];
    await rejects([...attack, '--iterations', '0'], /--iterations.*expected a positive integer/);
    await rejects([...attack, '--beta', '1e308'], /--beta.*expected at most 1000000/);
    // The estimate of mini_resnet's 4096 px pass (0.6 GB) is over a 0.4 GB budget: refused before it starts.
    await rejects(
      [...base, '--resolutions', '224,4096'],
      /a pass at 4096 px needs about \d+\.\d GB by our estimate, over the memory budget of 0\.4 GB/,
      2,
      {
        CAMERAS_MEMORY_BUDGET: '0.4',
      },
    );
  });
  it('takes an --epsilon in scientific notation (1e9 was refused as not positive)', async () => {
    const out = join(work, 'epsilon');
    const run = await cameras(['attack', PHOTO, '--model', MODEL, '--epsilon', '1e9', '--iterations', '1', '--out-dir', out, '--quiet']);
    assert.equal(run.code, 0, run.stderr);
    rmSync(out, { recursive: true });
  });
});

describe('the README documents every flag', () => {
  it("each command's table in the README holds exactly the flags its --help lists", async () => {
    const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
    const sections = readme.split(/^### /m).filter((section) => /^`cameras /.test(section));
    const documented = new Set<string>();
    for (const section of sections) {
      const heading = section.split('\n')[0] as string;
      const commands = [...heading.matchAll(/`cameras (\w+)/g)].map((m) => m[1] as string);
      const table = section.split('\n').filter((line) => line.startsWith('| `'));
      const inReadme = new Set(table.flatMap((row) => [...(row.split(' | ')[0] as string).matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0])));
      const inHelp = new Set<string>();
      for (const command of commands) {
        documented.add(command);
        const help = await cameras([command, '--help']);
        assert.equal(help.code, 0, help.stderr);
        for (const line of help.stdout.split('\n'))
          for (const flag of /^\s+(?:-\w, )?(--[a-z][a-z-]*)/.exec(line)?.slice(1) ?? []) if (flag !== '--help') inHelp.add(flag);
      }
      assert.deepEqual([...inReadme].sort(), [...inHelp].sort(), `flags of ${commands.join(', ')}: README vs --help`);
    }
    const all = await cameras(['--help']);
    const listed = [...all.stdout.matchAll(/^\s{2}(\w+)\b/gm)].map((m) => m[1] as string).filter((c) => c !== 'help');
    assert.deepEqual([...documented].sort(), listed.sort(), 'every command has a table');
  });
});

describe('cameras layers', () => {
  it('lists module paths with shapes and marks the default', async () => {
    const run = await cameras(['layers', '--model', MODEL]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^layer4\s+\[1, 128, 7, 7\]\s+nchw\s+Relu\s+\/layer4\/layer4\.0\/relu_1\/Relu_output_0\s+\(default\)$/m);
    assert.match(run.stdout, /^layer3\.0\.downsample\s+\[1, 64, 14, 14\]/m);
    assert.match(run.stdout, /^outputs \(--output\): logits \[1, 10\] \(explained by default\)$/m);
    const seg = await cameras(['layers', '--model', resolve(FIXTURES, 'segmentation/tiny_seg.onnx')]);
    assert.match(seg.stdout, /^outputs \(--output\): out \[\?, 4, \?, \?\] \(explained by default\), aux \[\?, 4, \?, \?\]$/m);
  });
});

describe('extended: CLI image path equals the .npy path on resnet18 (cat_dog.png)', {
  skip: hasShared ? false : '../shared not found',
}, () => {
  for (const [cls, layer] of [
    [243, 'layer3'],
    [243, 'layer4'],
    [281, 'layer3'],
    [281, 'layer4'],
  ] as const) {
    it(`class ${cls} at ${layer}`, async () => {
      const model = resolve(SHARED_REFERENCE, 'resnet18/model.onnx');
      const a = join(work, `image-${cls}-${layer}.npy`);
      const b = join(work, `tensor-${cls}-${layer}.npy`);
      const common = ['--model', model, '--layer', layer, '--class', String(cls), '--quiet'];
      const first = await cameras([
        'explain',
        resolve(SHARED, 'images/cat_dog.png'),
        '--preprocess',
        'torchvision',
        '--save-map',
        a,
        ...common,
      ]);
      const second = await cameras([
        'explain',
        '--input',
        resolve(SHARED_REFERENCE, 'resnet18/cat_dog.input.npy'),
        '--save-map',
        b,
        ...common,
      ]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(second.code, 0, second.stderr);
      // Our preprocessing of the photo is the authors' tensor to the bit, so the maps are too.
      assert.deepEqual([...npy(a).data], [...npy(b).data]);
    });
  }
});
