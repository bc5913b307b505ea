#!/usr/bin/env node
import { readFile, realpath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import * as ort from 'onnxruntime-node';
import { probeShapes } from '../engine/probe.js';
import { CamerasError, ExitCode } from '../errors.js';
import { METHODS, REGISTRY } from '../methods/registry.js';
import { DEFAULT_METRICS, METRICS } from '../metrics/names.js';
import { DEFAULT_MODEL_NAME, ONLINE, TORCHVISION, ZOO } from '../models/zoo.js';
import { cacheDir, resolveModel } from '../models/zoo-node.js';
import { OnnxGraph } from '../onnx/graph.js';
import { defaultLayer, listLayers, resolveLayer } from '../onnx/layers.js';
import { COLORMAPS_NAMES } from '../render/colormap.js';
import type { AttackFlags } from './attack.js';
import type { BatchFlags, WorkerFlags } from './batch.js';
import type { EvalFlags } from './eval.js';
import { compareCommand, explainCommand, OPTION_FLAGS } from './explain.js';
import type { SanityFlags } from './sanity.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function splitList(value: string, empty: string): string[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw new InvalidArgumentError(empty);
  return parts;
}

function parseResolutions(value: string): number[] {
  return splitList(value, 'the resolution list is empty; give sizes such as 224,324,424').map((s) => {
    if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`'${s}' is not a size; give integers such as 224,324,424`);
    return Number(s);
  });
}

function parseList(value: string): string[] {
  return splitList(value, 'the list is empty');
}

function parseOpacity(value: string): number {
  const v = Number(value);
  if (!(v >= 0 && v <= 1)) throw new InvalidArgumentError('expected a number between 0 and 1');
  return v;
}

/** What `cameras compare` shows by default: CAMERAS and one method of each family. */
const COMPARED = ['cameras', 'gradcam', 'gradcampp', 'layercam', 'normgrad', 'gradient', 'smoothgrad'];

/** What `cameras eval` scores by default: the paper's comparison. */
const EVAL_METHODS = ['cameras', 'gradcam', 'gradcampp', 'layercam', 'scorecam', 'normgrad', 'gradient', 'smoothgrad'];

/** What `cameras sanity` checks by default: CAMERAS, Grad-CAM and the input gradient. */
const SANITY_METHODS = ['cameras', 'gradcam', 'gradient'];

function parseDepths(value: string): number[] {
  return splitList(value, 'the depth list is empty; give depths such as 1,2,4').map((s) => {
    if (!/^\d+$/.test(s) || Number(s) < 1) throw new InvalidArgumentError(`'${s}' is not a depth; give positive integers such as 1,2,4`);
    return Number(s);
  });
}

function parseFraction(value: string): number {
  const v = Number(value);
  if (!(Number.isFinite(v) && v >= 0)) throw new InvalidArgumentError('expected a number, 0 or more (e.g. 0.15)');
  return v;
}

/** A positive number in pixel units (the image in [0, 1]); "8/255" reads as 8 / 255. */
function parsePixels(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(?:\/(\d+(?:\.\d+)?))?$/.exec(value.trim());
  const v = match ? Number(match[1]) / (match[2] ? Number(match[2]) : 1) : Number.NaN;
  if (!(v > 0 && Number.isFinite(v))) throw new InvalidArgumentError('expected a positive number in pixel units, e.g. 0.1 or 8/255');
  return v;
}

function parseConfidence(value: string): number {
  const v = Number(value);
  if (!(v > 0 && v <= 1)) throw new InvalidArgumentError('expected a probability above 0 and at most 1, e.g. 0.9999');
  return v;
}

function parseSeed(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

function parseCount(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** More intra-op threads than cores only slows ONNX Runtime down (999 on 2 cores: minutes for a 0.4 s pass). */
function parseThreads(value: string): number {
  const threads = parseCount(value);
  const cores = availableParallelism();
  if (threads > cores)
    throw new InvalidArgumentError(
      `this machine has ${cores} cores; give at most ${cores} (more threads than cores slow ONNX Runtime down)`,
    );
  return threads;
}

async function layersCommand(flags: { model: string; weights?: string; json?: boolean; size?: number }): Promise<void> {
  const model = await resolveModel(flags.model, flags.weights);
  const graph = OnnxGraph.fromBytes(model.bytes, model.source);
  const declared = graph.declaredShape(graph.inputNames[0] as string)?.[2] ?? -1;
  const size = flags.size ?? model.entry?.inputSize ?? (declared > 0 ? declared : 224);
  const layers = listLayers(graph);
  let fallback: { tensor: string; name: string } | undefined;
  try {
    fallback = model.entry?.layer ? resolveLayer(graph, model.entry.layer) : defaultLayer(graph);
  } catch {
    // No global pooling before the head: every layer is listed, none is the default.
  }
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
    default: l.tensor === fallback?.tensor && l.name === fallback?.name,
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
  if (!fallback) process.stdout.write('no default layer (no global pooling before the head): pass one of these to explain with --layer\n');
}

async function modelsCommand(flags: { json?: boolean }): Promise<void> {
  const all = [...ZOO, ...TORCHVISION, ...ONLINE];
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(all)}\n`);
    return;
  }
  const width = Math.max(...all.map((e) => e.name.length));
  for (const e of all) {
    const mark = e.name === DEFAULT_MODEL_NAME ? ' (default)' : '';
    process.stdout.write(
      `${e.name.padEnd(width)}  ${e.description}; layer ${e.layer || 'before the global pooling'}, ${e.inputSize} px, preprocessing ${e.preprocess}${mark}\n`,
    );
  }
  process.stdout.write(
    `\nnsfwjs models ship as ONNX files built with the package; onnx: models download on first use and stay in ${cacheDir()};\ntorchvision models build from --weights.\nAny .onnx file or URL, or a TF.js model.json with its weight files, works as --model too.\n`,
  );
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
    .argument('[images...]', 'JPEG, PNG or WebP photos, folders of them, or patterns such as photos/*.jpg')
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
    .addOption(
      new Option('--method <name>', 'cameras, a single-scale CAM method (as pytorch-grad-cam computes it) or an input-gradient method')
        .choices([...METHODS])
        .default('cameras'),
    )
    .option(
      '--target <target>',
      "what is explained: logit (default), prob (its softmax probability), logprob (its log) or contrast:<class> (logit minus that class's: why this class rather than that one)",
    )
    .addOption(
      new Option('--postprocess <order>', "CAM methods: pytorch-grad-cam's scaling (default: exact comparisons) or resize-first").choices([
        'pytorch-grad-cam',
        'resize-first',
      ]),
    )
    .option('--multi-scale', 'CAM methods: average the raw maps of every resolution (CAMERAS-style) before scaling')
    .addOption(
      new Option(
        '--eigen-sign <sign>',
        "eigencam: the singular vector's sign as numpy gives it (default at one scale: equal to pytorch-grad-cam) or along the mean activation (default with --multi-scale)",
      ).choices(['numpy', 'activation']),
    )
    .option('--samples <n>', 'smoothgrad: noisy copies (25); integrated_gradients: steps (64)', parseCount)
    .option('--noise <fraction>', "smoothgrad or --smooth: noise as a fraction of the input's range (0.15)", parseFraction)
    .option('--seed <n>', 'smoothgrad or --smooth: seed of the noise (0); the same seed gives the same map', parseSeed)
    .option('--smooth <samples>', 'NoiseTunnel around any method: its raw maps averaged over this many noisy copies', parseCount)
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model (F32, F16 or BF16)')
    .option(
      '--models <list>',
      'explain with several models side by side in one panel, e.g. nsfwjs:mobilenet_v2,nsfwjs:inception_v3',
      parseList,
    )
    .option('--classes <list>', 'explain several classes (indices or labels) into one panel', parseList)
    .option('--top <k>', 'explain the k most likely classes into one panel', parseCount)
    .option('--panel', 'write image | heatmap | overlay with the class name and probability')
    .option('--scales', 'add the map of each resolution alone to the panel')
    .addOption(new Option('--colormap <name>', 'colours of the heat').choices([...COLORMAPS_NAMES]).default('turbo'))
    .option('--opacity <0..1>', 'weight of the heat over the photo', parseOpacity, 0.5)
    .option('--colorbar', 'add a colour bar under the overlay')
    .option('--out-dir <folder>', 'where pictures of several images go (default: the current folder)')
    .option('--save-map <map.npy>', 'write the map as a float32 .npy')
    .option('--out <picture.png>', 'write the picture as a PNG (default for an image: <name>.cameras.png)')
    .option('--json', 'print one JSON object with the result on stdout')
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .addHelpText(
      'after',
      `
Examples:
  cameras explain assets/images/cat_dog.png
  cameras explain photo.jpg --model nsfwjs:inception_v3 --class Neutral
  cameras explain photo.jpg --top 2 --scales --out panel.png
  cameras explain photo.jpg --models nsfwjs:mobilenet_v2,nsfwjs:inception_v3
  cameras explain photos/ --out-dir maps/
  cameras explain photo.jpg --method gradcam --target contrast:Drawing
  cameras explain photo.jpg --method layercam --smooth 16 --seed 1
  cameras explain photo.jpg --model resnet50.onnx --layer layer4 --class 243 --out cat.png
  cameras explain --input cat_dog.input.npy --model resnet18.onnx --layer layer3 --json --save-map map.npy

The default model, nsfwjs:mobilenet_v2, is a pretrained MobileNetV2 that sorts images into 5 content
classes (Drawing, Hentai, Neutral, Porn, Sexy), not ImageNet's 1000: bring an ImageNet model with --model.

Exit codes: 0 done, 1 internal error, 2 bad input (file, flag or value), 3 model op without a gradient rule.`,
    )
    .action(explainCommand);
  program
    .command('layers')
    .description('list the layers of a model that can be explained, with their output shapes')
    .option('--model <model>', `an .onnx file or a zoo name`, DEFAULT_MODEL_NAME)
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model')
    .option('--size <px>', "input size used to report shapes (default: the model's)", parseCount)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  cameras layers\n  cameras layers --model resnet18.onnx')
    .action(layersCommand);
  program
    .command('compare')
    .description('explain one photo with several methods into one picture, with their timings')
    .argument('<image>', 'JPEG, PNG or WebP photo')
    .addOption(new Option('--methods <list>', 'methods to compare').argParser(parseList).default(COMPARED, COMPARED.join(',')))
    .option('--model <model>', "an .onnx file or a zoo name (see 'cameras models')", DEFAULT_MODEL_NAME)
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model')
    .option('--layer <name>', "target layer for the CAM methods; default: the model's")
    .option('--class <class>', 'class to explain, by index or label; default: the top-1 class')
    .option('--target <target>', 'logit (default), prob, logprob or contrast:<class>')
    .option('--out <picture.png>', 'where the grid goes (default: <name>.compare.png)')
    .addOption(new Option('--colormap <name>', 'colours of the heat').choices([...COLORMAPS_NAMES]).default('turbo'))
    .option('--opacity <0..1>', 'weight of the heat over the photo', parseOpacity, 0.5)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .addHelpText(
      'after',
      `\nExample:\n  cameras compare photo.jpg --methods cameras,gradcam,integrated_gradients\n\nMethods: ${METHODS.join(', ')}`,
    )
    .action(compareCommand);
  program
    .command('eval')
    .description("score methods on an annotated data set: pointing game, the paper's densities, insertion and deletion")
    .argument('<dataset>', 'a VOC folder (Annotations/ and JPEGImages/, or images with .xml beside them) or a COCO .json')
    .addOption(new Option('--methods <list>', 'methods to score').argParser(parseList).default(EVAL_METHODS, EVAL_METHODS.join(',')))
    .addOption(
      new Option('--metrics <list>', `metrics: ${METRICS.join(', ')}`)
        .argParser(parseList)
        .default(DEFAULT_METRICS, DEFAULT_METRICS.join(',')),
    )
    .option(
      '--model <model>',
      "an .onnx file or a zoo name (see 'cameras models'); its labels must name the data set's classes",
      DEFAULT_MODEL_NAME,
    )
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model')
    .option('--layer <name>', "target layer; default: the model's")
    .option('--out-dir <folder>', 'where results.jsonl (resumed if present), summary.csv and summary.json go', 'eval')
    .option('--tolerance <px>', "pointing game's tolerance in pixels (15, TorchRay's)", parseSeed, 15)
    .option('--annotated-class', "insertion/deletion follow the annotated class, not the model's top-1 (RISE's choice)")
    .option('--limit <n>', 'only the first n images', parseCount)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--redis <url>', "run the pairs as jobs on 'cameras worker's through this Redis (redis://host:port)")
    .option('--queue <name>', 'the BullMQ queue (default: cameras)')
    .option('--quiet', 'print nothing but errors')
    .addHelpText(
      'after',
      '\nExample:\n  cameras eval benchmark/ --model composite.onnx --methods cameras,gradcam --out-dir results/\n  cameras eval benchmark/ --redis redis://10.0.0.5:6379   # with cameras worker --redis ... on machines that see benchmark/ and results/',
    )
    .action(async (dataset: string, flags: EvalFlags) => (await import('./eval.js')).evalCommand(dataset, flags));
  program
    .command('sanity')
    .description('model-randomisation sanity check (Adebayo et al.): each method on the trained model and on copies with randomised layers')
    .argument('<image>', 'JPEG, PNG or WebP photo')
    .addOption(new Option('--methods <list>', 'methods to check').argParser(parseList).default(SANITY_METHODS, SANITY_METHODS.join(',')))
    .addOption(
      new Option('--mode <mode>', 'randomise from the logits down, accumulating, or one layer at a time')
        .choices(['cascading', 'independent'])
        .default('cascading'),
    )
    .addOption(
      new Option(
        '--attribution-view <view>',
        "how input attributions are compared: as Adebayo et al.'s code views them (sum |g|, clipped at the 99th percentile) or as the method's own map",
      )
        .choices(['adebayo', 'method'])
        .default('adebayo'),
    )
    .option('--depths <list>', 'layers randomised, counted from the logits (default 1, 2, 4, ... and all)', parseDepths)
    .option('--seed <n>', 'seed of the random weights (0)', parseSeed)
    .option('--model <model>', "an .onnx file or a zoo name (see 'cameras models')", DEFAULT_MODEL_NAME)
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model')
    .option('--layer <name>', "target layer; default: the model's")
    .option('--out <picture.png>', 'where the grid goes (default: <name>.sanity.png)')
    .option('--json', 'print one JSON line per method and depth')
    .addOption(new Option('--colormap <name>', 'colours of the heat').choices([...COLORMAPS_NAMES]).default('turbo'))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .addHelpText('after', '\nExample:\n  cameras sanity photo.jpg --methods cameras,gradcam,gradient --depths 1,2,4')
    .action(async (image: string, flags: SanityFlags) => (await import('./sanity.js')).sanityCommand(image, flags));
  program
    .command('attack')
    .description(
      "the paper's saliency-guided attack: PGD toward a class with its perturbation pushed where the saliency map looks, beside the plain attack",
    )
    .argument('<images...>', 'JPEG, PNG or WebP photos, folders of them, or globs')
    .option('--target <class>', 'least-likely (default), untargeted, or a class index or label', 'least-likely')
    .option('--beta <n>', "weight of the saliency penalty beta * ||p * (1 - Psi)||_2 (the paper's 50)", parseFraction, 50)
    .addOption(new Option('--saliency <method>', 'the method whose map (Psi) guides the attack').choices([...METHODS]).default('cameras'))
    .addOption(
      new Option('--norm <norm>', 'step and budget: linf (sign steps in a box) or l2 (normalised steps in a ball)')
        .choices(['linf', 'l2'])
        .default('linf'),
    )
    .option('--patience <n>', 'steps without progress after which beta halves (0: beta stays fixed, as in the paper)', parseSeed, 10)
    .option(
      '--epsilon <px>',
      'budget of the perturbation in pixel units (default: none beyond the pixel range; the attack stops on confidence and reports the norm)',
      parsePixels,
    )
    .option('--step <px>', 'step size in pixel units (default 1/255 for linf, 0.1 for l2)', parsePixels)
    .option('--iterations <n>', 'iteration cap', parseSeed, 500)
    .option('--confidence <p>', "stop once the target's probability reaches this", parseConfidence, 0.9999)
    .option('--random-start', 'start from a random point of the budget (seeded by --seed)')
    .option('--seed <n>', 'seed of the random start (0)', parseSeed)
    .option('--model <model>', "an .onnx file or a zoo name (see 'cameras models')", DEFAULT_MODEL_NAME)
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model')
    .option('--layer <name>', "target layer of the saliency method; default: the model's")
    .option('--out-dir <folder>', 'where the images and attack.jsonl go', 'attack')
    .option('--json', 'print one JSON line per image')
    .addOption(new Option('--colormap <name>', 'colours of the heat').choices([...COLORMAPS_NAMES]).default('turbo'))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .addHelpText('after', '\nExample:\n  cameras attack photo.jpg --target least-likely --beta 50 --saliency cameras')
    .action(async (images: string[], flags: AttackFlags) => (await import('./attack.js')).attackCommand(images, flags));
  program
    .command('batch')
    .description('explain many images with several methods and models: here by default, or through BullMQ workers with --redis')
    .argument('[inputs...]', 'images, folders, globs, or a manifest (.csv with an image column, .jsonl with {"image": ...})')
    .addOption(new Option('--methods <list>', 'methods to run').argParser(parseList).default(['cameras'], 'cameras'))
    .option('--model <model>', "an .onnx file or a zoo name (see 'cameras models')", DEFAULT_MODEL_NAME)
    .option('--models <list>', 'several models, each job once per model', parseList)
    .option('--weights <file.safetensors>', 'state dict for a torchvision:<arch> model')
    .option('--class <class>', "class for every image (a manifest's class column wins); default: the top-1 class")
    .option('--target <target>', 'logit (default), prob, logprob or contrast:<class>')
    .option('--out-dir <folder>', 'where each job writes <image>.<method>.<key>.npy, .png and .json', 'batch')
    .option('--redis <url>', 'run the jobs through BullMQ on this Redis (redis://host:port); workers: cameras worker')
    .option('--queue <name>', 'the BullMQ queue (default: cameras)')
    .option('--status', "print the queue's counts and recent failures (with --redis)")
    .option('--json', 'print one JSON line per job')
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .addHelpText(
      'after',
      '\nExamples:\n  cameras batch photos/ --methods cameras,gradcam --out-dir maps/\n  cameras batch manifest.csv --redis redis://10.0.0.5:6379',
    )
    .action(async (inputs: string[], flags: BatchFlags) => (await import('./batch.js')).batchCommand(inputs, flags));
  program
    .command('worker')
    .description('process batch jobs from Redis (BullMQ), each in a sandboxed child process, until stopped')
    .requiredOption('--redis <url>', 'the Redis the batch was sent to (redis://host:port)')
    .option('--queue <name>', 'the BullMQ queue (default: cameras)')
    .option('--concurrency <n>', 'jobs at once, each in its own process', parseCount, 1)
    .addOption(
      new Option('--lock-ms <ms>', "how long a silent worker's job stays locked before another takes it over")
        .argParser(parseCount)
        .hideHelp(),
    )
    .option('--threads <n>', 'ONNX Runtime threads per job (default: all cores)', parseThreads)
    .option('--quiet', 'print nothing but errors')
    .action(async (flags: WorkerFlags) => (await import('./batch.js')).workerCommand(flags));
  program
    .command('serve')
    .description('serve the browser app (CAMERAS in the page, on your own images, nothing uploaded) on this machine')
    .option('--port <n>', 'port (0: any free one)', parseSeed, 8080)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--quiet', 'print nothing but errors')
    .action(async (flags: { port: number; host: string; quiet?: boolean }) => (await import('./serve.js')).serveCommand(flags));
  program
    .command('methods')
    .description('list the saliency methods, what each needs and its own options')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      const rows = REGISTRY.map((m) => ({
        name: m.name,
        summary: m.summary,
        needs: [...m.needs],
        options: [...m.options],
        flags: m.options.map((o) => OPTION_FLAGS[o] ?? o),
      }));
      if (flags.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
      else
        for (const r of rows)
          process.stdout.write(
            `${r.name.padEnd(22)}${r.summary}\n${''.padEnd(22)}needs: ${r.needs.join(', ')}; flags: ${r.flags.join(', ') || '-'}\n`,
          );
    });
  program
    .command('models')
    .description('list the built-in models')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  cameras models')
    .action(modelsCommand);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // A reader that closes early (`cameras methods | head`) is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(ExitCode.ok);
    throw error;
  });
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
    // A command that finished but with failures (a batch's failed jobs) has set its own code.
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
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
