#!/usr/bin/env node
import { access, constants, readFile, realpath } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import * as ort from 'onnxruntime-node';
import { probeShapes } from '../engine/probe.js';
import { CamerasError, ExitCode } from '../errors.js';
import { Explainer } from '../explainer.js';
import { readNpyFile, writeFileAtomic, writeNpyFile } from '../index.js';
import { readImage } from '../io/image-node.js';
import type { FloatArray } from '../io/npy.js';
import { preprocess, presetByName, type RgbImage } from '../io/preprocess.js';
import { DEFAULT_RESOLUTIONS } from '../methods/cameras.js';
import { classByName, DEFAULT_MODEL_NAME, resolutionsFor, ZOO } from '../models/zoo.js';
import { cacheDir, resolveModel } from '../models/zoo-node.js';
import { OnnxGraph } from '../onnx/graph.js';
import { defaultLayer, listLayers, resolveLayer } from '../onnx/layers.js';
import { overlayPng } from '../render/overlay-node.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function parseResolutions(value: string): number[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw new InvalidArgumentError('the resolution list is empty; give sizes such as 224,324,424');
  return parts.map((s) => {
    if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`'${s}' is not a size; give integers such as 224,324,424`);
    return Number(s);
  });
}

function parseThreads(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** Fails before any work when an output could not be written. */
async function checkWritable(path: string): Promise<void> {
  try {
    await access(dirname(resolve(path)), constants.W_OK);
  } catch {
    throw new CamerasError(`cannot write ${path}: its folder ${dirname(resolve(path))} does not exist or is not writable`);
  }
}

interface ExplainFlags {
  input?: string;
  model: string;
  layer?: string;
  class?: string;
  resolutions?: number[];
  preprocess?: string;
  saveMap?: string;
  out?: string;
  json?: boolean;
  threads?: number;
  quiet?: boolean;
}

async function explainCommand(image: string | undefined, flags: ExplainFlags): Promise<void> {
  const started = performance.now();
  if (!image && !flags.input) throw new CamerasError('give an image file or --input <tensor.npy>');
  if (image && flags.input) throw new CamerasError('give either an image or --input, not both');
  const out = flags.out ?? (image && !flags.saveMap && !flags.json ? `${basename(image, extname(image))}.cameras.png` : undefined);
  for (const path of [out, flags.saveMap]) if (path) await checkWritable(path);
  const model = await resolveModel(flags.model);
  const entry = model.entry;
  const preset = presetByName(flags.preprocess ?? entry?.preprocess ?? 'torchvision');
  const size = entry?.inputSize ?? preset.size;
  let classIndex: number | null = null;
  if (flags.class !== undefined) {
    const found = classByName(flags.class, entry?.labels);
    if (found === undefined) {
      throw new CamerasError(
        `unknown class '${flags.class}'; give an index${entry ? ` or one of: ${entry.labels.join(', ')}` : ' (this model has no labels)'}`,
      );
    }
    classIndex = found;
  }

  let tensor: FloatArray;
  let picture: RgbImage | undefined;
  if (flags.input) {
    tensor = await readNpyFile(flags.input);
  } else {
    picture = await readImage(image as string);
    tensor = preprocess(picture, preset, size);
  }
  const explainer = await Explainer.create(ort, {
    model: model.bytes,
    layer: flags.layer ?? entry?.layer,
    threads: flags.threads,
    source: model.source,
  });
  try {
    const resolutions = flags.resolutions ?? (entry ? resolutionsFor(entry.inputSize) : [...DEFAULT_RESOLUTIONS]);
    const result = await explainer.explain(tensor, { classIndex, resolutions });
    if (flags.saveMap) await writeNpyFile(flags.saveMap, { data: result.map, shape: [result.height, result.width] });
    if (out) await writeFileAtomic(out, await overlayPng(result, picture));
    const seconds = (performance.now() - started) / 1000;
    if (flags.json) {
      const report = {
        model: flags.model,
        layer: explainer.layer.name,
        method: result.method,
        class: result.classIndex,
        classPerResolution: result.classPerResolution,
        probPerResolution: result.probPerResolution,
        usedResolutions: result.usedResolutions,
        empty: result.empty,
        seconds: Math.round(seconds * 1000) / 1000,
      };
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else if (!flags.quiet) {
      const label = entry?.labels[result.classIndex];
      const lines = [
        `class ${result.classIndex}${label ? ` (${label})` : ''} at layer ${explainer.layer.name}, fused from ${result.usedResolutions.join(', ')} px in ${seconds.toFixed(2)} s`,
      ];
      if (result.empty) lines.push('the map is empty: no region raises this class at this layer (all zero after ReLU)');
      if (out) lines.push(`wrote ${out}`);
      if (flags.saveMap) lines.push(`wrote ${flags.saveMap}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    }
  } finally {
    await explainer.dispose();
  }
}

async function layersCommand(flags: { model: string; json?: boolean; size?: number }): Promise<void> {
  const model = await resolveModel(flags.model);
  const graph = OnnxGraph.fromBytes(model.bytes, model.source);
  const size = flags.size ?? model.entry?.inputSize ?? 224;
  const layers = listLayers(graph);
  const fallback = model.entry ? resolveLayer(graph, model.entry.layer) : defaultLayer(graph);
  const shapes = await probeShapes(
    ort,
    graph,
    layers.map((l) => l.tensor),
    size,
  );
  const rows = layers.map((l) => ({
    name: l.name,
    tensor: l.tensor,
    op: l.opType,
    shape: shapes.get(l.tensor) ?? null,
    default: l.tensor === fallback.tensor && l.name === fallback.name,
  }));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  const width = Math.max(...rows.map((r) => r.name.length), 5);
  process.stdout.write(`${'layer'.padEnd(width)}  shape at ${size} px      op        tensor\n`);
  for (const r of rows) {
    const shape = r.shape ? `[${r.shape.join(', ')}]` : '?';
    process.stdout.write(`${r.name.padEnd(width)}  ${shape.padEnd(20)} ${r.op.padEnd(9)} ${r.tensor}${r.default ? '   (default)' : ''}\n`);
  }
}

async function modelsCommand(flags: { json?: boolean }): Promise<void> {
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(ZOO)}\n`);
    return;
  }
  const width = Math.max(...ZOO.map((e) => e.name.length));
  for (const e of ZOO) {
    const mark = e.name === DEFAULT_MODEL_NAME ? ' (default)' : '';
    process.stdout.write(
      `${e.name.padEnd(width)}  ${e.description}; layer ${e.layer}, ${e.inputSize} px, preprocessing ${e.preprocess}${mark}\n`,
    );
  }
  process.stdout.write(`\nConverted to ONNX on first use and kept in ${cacheDir()}. Any .onnx file works as --model too.\n`);
}

export async function buildProgram(): Promise<Command> {
  const { version } = JSON.parse(await readFile(resolve(packageRoot, 'package.json'), 'utf8')) as { version: string };
  const program = new Command();
  program
    .name('cameras')
    .version(version)
    .description('CAMERAS saliency maps (Jalwana et al., CVPR 2021) for ONNX image classifiers')
    .configureOutput({ outputError: (message, write) => write(`cameras: ${message}`) })
    .exitOverride();
  program
    .command('explain')
    .description('explain what a classifier looks at in one image, with CAMERAS')
    .argument('[image]', 'JPEG, PNG or WebP photo')
    .option('--input <tensor.npy>', 'a preprocessed float32 NCHW [1,3,H,W] tensor instead of an image')
    .option('--model <model>', "an .onnx file or a zoo name (see 'cameras models')", DEFAULT_MODEL_NAME)
    .option('--layer <name>', "target layer: module or layer name (layer4, out_relu), node or tensor name; default: the model's")
    .option('--class <class>', 'class to explain, by index or label; default: the top-1 class')
    .option(
      '--resolutions <list>',
      "comma-separated square input sizes, the first is the map size; default: the model's size and 7 more, 100 px apart",
      parseResolutions,
    )
    .option('--preprocess <preset>', "torchvision, unit, keras-tf or keras-caffe; default: the model's (torchvision for a file)")
    .option('--save-map <map.npy>', 'write the map as a float32 .npy')
    .option('--out <overlay.png>', 'write the map over the image as a PNG (default for an image: <name>.cameras.png)')
    .option('--json', 'print one JSON object with the result on stdout')
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .addHelpText(
      'after',
      `
Examples:
  cameras explain assets/images/cat_dog.png
  cameras explain photo.jpg --model nsfwjs:inception_v3 --class Neutral
  cameras explain photo.jpg --model nsfwjs:inception_v3 --class Neutral
  cameras explain photo.jpg --model resnet50.onnx --layer layer4 --class 243 --out cat.png
  cameras explain --input cat_dog.input.npy --model resnet18.onnx --layer layer3 --json --save-map map.npy

Exit codes: 0 done, 1 internal error, 2 bad input (file, flag or value), 3 model op without a gradient rule.`,
    )
    .action(explainCommand);
  program
    .command('layers')
    .description('list the layers of a model that can be explained, with their output shapes')
    .option('--model <model>', `an .onnx file or a zoo name`, DEFAULT_MODEL_NAME)
    .option('--size <px>', "input size used to report shapes (default: the model's)", parseThreads)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  cameras layers\n  cameras layers --model resnet18.onnx')
    .action(layersCommand);
  program
    .command('models')
    .description('list the built-in models')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  cameras models')
    .action(modelsCommand);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message; help and version exit 0.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (error instanceof CamerasError) {
      process.stderr.write(`cameras: error: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`cameras: internal error: ${(error as Error).stack ?? String(error)}\n`);
    return ExitCode.internal;
  }
}

// Run when executed (directly or through the npm bin link), not when imported by tests.
const entry = process.argv[1] ? await realpath(process.argv[1]).catch(() => '') : '';
if (entry === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv);
}
