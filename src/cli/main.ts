#!/usr/bin/env node
import { readFile, realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import * as ort from 'onnxruntime-node';
import { MAX_BETA, MAX_ITERATIONS } from '../attacks/pgd.js';
import { DETECTION_LAYOUTS } from '../engine/detections.js';
import { layerViewName } from '../engine/layer-view.js';
import { probeShapes } from '../engine/probe.js';
import { CamerasError, ExitCode } from '../errors.js';
import { MAX_NOISE, MAX_SAMPLES } from '../methods/noise-tunnel.js';
import { DEFAULT_METHOD, METHODS, REGISTRY } from '../methods/registry.js';
import { DEFAULT_METRICS, EVAL_METRICS, METRICS } from '../metrics/names.js';
import { declaredProfile } from '../models/open-node.js';
import { detectLayerView, resolveProfile } from '../models/profile.js';
import { DEFAULT_MODEL_NAME, ONLINE, TORCHVISION, ZOO } from '../models/zoo.js';
import { cacheDir, resolveModel } from '../models/zoo-node.js';
import { OnnxGraph } from '../onnx/graph.js';
import { defaultLayer, listLayers, resolveLayer } from '../onnx/layers.js';
import type { AttackFlags } from './attack.js';
import type { BatchFlags, WorkerFlags } from './batch.js';
import type { EvalFlags } from './eval.js';
import { compareCommand, explainCommand, OPTION_FLAGS } from './explain.js';
import {
  FLAGS,
  modelFlags,
  parseConfidence,
  parseCount,
  parseCountUpTo,
  parseDepths,
  parseFractionBelow1,
  parseFractionUpTo,
  parseList,
  parsePixels,
  parsePort,
  parseResolutions,
  parseSeed,
  pictureFlags,
  runFlags,
  withFlags,
} from './options.js';
import type { SanityFlags } from './sanity.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** What `cameras compare` shows by default: CAMERAS and one method of each family. */
const COMPARED = ['cameras', 'gradcam', 'gradcampp', 'layercam', 'normgrad', 'gradient', 'smoothgrad'];

/** What `cameras eval` scores by default: the paper's comparison. */
const EVAL_METHODS = ['cameras', 'gradcam', 'gradcampp', 'layercam', 'scorecam', 'normgrad', 'gradient', 'smoothgrad'];

/** What `cameras sanity` checks by default: CAMERAS, Grad-CAM and the input gradient. */
const SANITY_METHODS = ['cameras', 'gradcam', 'gradient'];

async function layersCommand(flags: { model: string; weights?: string; json?: boolean; size?: number }): Promise<void> {
  const model = await resolveModel(flags.model, flags.weights);
  const graph = OnnxGraph.fromBytes(model.bytes, model.source);
  const profile = resolveProfile(graph, declaredProfile(flags.model, model.entry), model.source);
  const size = flags.size ?? profile.inputSize;
  const layers = listLayers(graph);
  let fallback: { tensor: string; name: string } | undefined;
  try {
    fallback = profile.layer ? resolveLayer(graph, profile.layer) : defaultLayer(graph);
  } catch {
    // No global pooling before the head: every layer is listed, none is the default.
  }
  const shapes = await probeShapes(
    ort,
    graph,
    layers.map((l) => l.tensor),
    size,
  );
  const rows = layers.map((l) => {
    const shape = shapes.get(l.tensor) ?? null;
    return {
      name: l.name,
      tensor: l.tensor,
      op: l.opType,
      shape,
      // How a map is read from it: as it is, channels last, or tokens on the patch grid.
      view: shape && shape.length >= 3 ? layerViewName(profile.layerView ?? detectLayerView(graph, l.tensor, shape)) : null,
      default: l.tensor === fallback?.tensor && l.name === fallback?.name,
    };
  });
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  const width = Math.max(...rows.map((r) => r.name.length), 5);
  process.stdout.write(`${'layer'.padEnd(width)}  shape at ${size} px      view    op        tensor\n`);
  for (const r of rows) {
    const shape = r.shape ? `[${r.shape.join(', ')}]` : '?';
    process.stdout.write(
      `${r.name.padEnd(width)}  ${shape.padEnd(20)} ${(r.view ?? '-').padEnd(7)} ${r.op.padEnd(9)} ${r.tensor}${r.default ? '   (default)' : ''}\n`,
    );
  }
  if (!fallback)
    process.stdout.write(
      'no default layer (no global pooling before the head, no transformer blocks): pass one of these to explain with --layer\n',
    );
  const outputs = profile.outputs.map(
    (o) =>
      `${o.name} [${(o.shape ?? []).map((d) => (d < 0 ? '?' : d)).join(', ')}]${o.name === profile.output ? ' (explained by default)' : ''}`,
  );
  process.stdout.write(`outputs (--output): ${outputs.join(', ')}\n`);
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
  withFlags(
    program
      .command('explain')
      .description('explain what a classifier looks at in one image, with CAMERAS')
      .argument('[images...]', 'JPEG, PNG or WebP photos, folders of them, or patterns such as photos/*.jpg'),
    new Option('--input <tensor.npy>', 'a preprocessed float32 NCHW [1,3,H,W] tensor instead of an image'),
    modelFlags(),
    FLAGS.class(),
    new Option(
      '--resolutions <list>',
      "comma-separated square input sizes, the first is the map size; default: the model's size and 7 more, 100 px apart (a ViT: whole patch grids, 224..896 for patch 16)",
    ).argParser(parseResolutions),
    new Option('--preprocess <preset>', "torchvision, unit, keras-tf or keras-caffe; default: the model's (torchvision for a file)"),
    FLAGS.method(),
    FLAGS.target(),
    FLAGS.output(),
    FLAGS.detection(),
    new Option(
      '--layout <layout>',
      "a detector's output before NMS: yolo [1, N, 4+1+K], yolov8 [1, 4+K, N] or ssd [1, N, 4+K] (default: read from its shape)",
    ).choices([...DETECTION_LAYOUTS]),
    new Option(
      '--layer-view <view>',
      "how the layer's tensor becomes a map: nchw, nhwc (channels last) or tokens[:<prefix>] (a transformer's tokens on the patch grid); default: detected",
    ),
    new Option(
      '--position-resample <convention>',
      "a ViT's position embedding at other sizes: torchvision's interpolate_embeddings (default) or timm's resample_abs_pos_embed",
    ).choices(['torchvision', 'timm']),
    new Option('--postprocess <order>', "CAM methods: pytorch-grad-cam's scaling (default: exact comparisons) or resize-first").choices([
      'pytorch-grad-cam',
      'resize-first',
    ]),
    new Option('--multi-scale', 'CAM methods: average the raw maps of every resolution (CAMERAS-style) before scaling'),
    new Option(
      '--eigen-sign <sign>',
      "eigencam: the singular vector's sign as numpy gives it (default at one scale: equal to pytorch-grad-cam) or along the mean activation (default with --multi-scale)",
    ).choices(['numpy', 'activation']),
    new Option('--head-fusion <fusion>', "rollout: how each block's attention heads are fused (default max)").choices([
      'mean',
      'max',
      'min',
    ]),
    new Option('--discard-ratio <fraction>', "rollout: the fraction of each block's smallest attentions dropped (default 0.9)").argParser(
      parseFractionBelow1,
    ),
    new Option(
      '--samples <n>',
      `smoothgrad: noisy copies (25); integrated_gradients: steps (64); drise: masks (1000); at most ${MAX_SAMPLES}`,
    ).argParser(parseCountUpTo(MAX_SAMPLES)),
    new Option(
      '--noise <fraction>',
      `smoothgrad or --smooth: noise as a fraction of the input's range (0.15; at most ${MAX_NOISE})`,
    ).argParser(parseFractionUpTo(MAX_NOISE)),
    FLAGS.seed('smoothgrad or --smooth: seed of the noise (0); drise: of the masks; the same seed gives the same map'),
    new Option(
      '--smooth <samples>',
      `NoiseTunnel around any method: its raw maps averaged over this many noisy copies (at most ${MAX_SAMPLES})`,
    ).argParser(parseCountUpTo(MAX_SAMPLES)),
    new Option(
      '--models <list>',
      'explain with several models side by side in one panel, e.g. nsfwjs:mobilenet_v2,nsfwjs:inception_v3',
    ).argParser(parseList),
    new Option('--classes <list>', 'explain several classes (indices or labels) into one panel').argParser(parseList),
    new Option('--top <k>', 'explain the k most likely classes into one panel').argParser(parseCount),
    new Option('--panel', 'write image | heatmap | overlay with the class name and probability'),
    new Option('--scales', 'add the map of each resolution alone to the panel'),
    pictureFlags(),
    new Option('--colorbar', 'add a colour bar under the overlay'),
    FLAGS.outDir('where pictures of several images go (default: the current folder)'),
    new Option('--save-map <map.npy>', 'write the map as a float32 .npy'),
    FLAGS.out('write the picture as a PNG, JPEG or WebP (default for an image: <name>.cameras.png)'),
    FLAGS.json('print one JSON object with the result on stdout'),
    runFlags(),
  )
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
  cameras explain street.jpg --model segmenter.onnx --target segment:car --method gradcam
  cameras explain scene.jpg --model composite:detector --detection 1 --method drise
  cameras explain scene.jpg --model yolov5s.onnx --target box:40,60,200,310:dog

The default model, nsfwjs:mobilenet_v2, is a pretrained MobileNetV2 that sorts images into 5 content
classes (Drawing, Hentai, Neutral, Porn, Sexy), not ImageNet's 1000: bring an ImageNet model with --model.

Exit codes: 0 done, 1 internal error, 2 bad input (file, flag or value), 3 model op without a gradient rule.`,
    )
    .action(explainCommand);
  withFlags(
    program.command('layers').description('list the layers of a model that can be explained, with their output shapes'),
    FLAGS.model(),
    FLAGS.weights(),
    new Option('--size <px>', "input size used to report shapes (default: the model's)").argParser(parseCount),
    FLAGS.json(),
  )
    .addHelpText('after', '\nExamples:\n  cameras layers\n  cameras layers --model resnet18.onnx')
    .action(layersCommand);
  withFlags(
    program
      .command('compare')
      .description('explain one photo with several methods into one picture, with their timings')
      .argument('<image>', 'JPEG, PNG or WebP photo'),
    FLAGS.methods(COMPARED, 'methods to compare'),
    modelFlags("target layer for the CAM methods; default: the model's"),
    FLAGS.class(),
    FLAGS.target(),
    FLAGS.detection(),
    FLAGS.out('where the grid goes (default: <name>.compare.png)'),
    pictureFlags(),
    runFlags(),
  )
    .addHelpText(
      'after',
      `\nExample:\n  cameras compare photo.jpg --methods cameras,gradcam,integrated_gradients\n\nMethods: ${METHODS.join(', ')}`,
    )
    .action(compareCommand);
  withFlags(
    program
      .command('eval')
      .description("score methods on an annotated data set: pointing game, the paper's densities, insertion and deletion")
      .argument('<dataset>', 'a VOC folder (Annotations/ and JPEGImages/, or images with .xml beside them) or a COCO .json'),
    FLAGS.methods(EVAL_METHODS, 'methods to score'),
    new Option('--metrics <list>', `metrics: ${METRICS.join(', ')}`)
      .argParser(parseList)
      .default([...DEFAULT_METRICS], DEFAULT_METRICS.join(',')),
    modelFlags(undefined, "an .onnx file or a zoo name (see 'cameras models'); its labels must name the data set's classes"),
    FLAGS.outDir('where results.jsonl (resumed if present), summary.csv and summary.json go', 'eval'),
    new Option('--tolerance <px>', "pointing game's tolerance in pixels (15, TorchRay's)").argParser(parseSeed).default(15),
    new Option('--annotated-class', "insertion/deletion follow the annotated class, not the model's top-1 (RISE's choice)"),
    new Option('--limit <n>', 'only the first n images').argParser(parseCount),
    FLAGS.redis("run the pairs as jobs on 'cameras worker's through this Redis (redis://host:port)"),
    FLAGS.queue(),
    runFlags(),
  )
    .addHelpText(
      'after',
      `\nMetrics:\n${EVAL_METRICS.map((m) => `  ${m.name.padEnd(11)}${m.summary}`).join('\n')}\n\nExample:\n  cameras eval benchmark/ --model composite.onnx --methods cameras,gradcam --out-dir results/\n  cameras eval benchmark/ --redis redis://10.0.0.5:6379   # with cameras worker --redis ... on machines that see benchmark/ and results/`,
    )
    .action(async (dataset: string, flags: EvalFlags) => (await import('./eval.js')).evalCommand(dataset, flags));
  withFlags(
    program
      .command('sanity')
      .description(
        'model-randomisation sanity check (Adebayo et al.): each method on the trained model and on copies with randomised layers',
      )
      .argument('<image>', 'JPEG, PNG or WebP photo'),
    FLAGS.methods(SANITY_METHODS, 'methods to check'),
    new Option('--mode <mode>', 'randomise from the logits down, accumulating, or one layer at a time')
      .choices(['cascading', 'independent'])
      .default('cascading'),
    new Option(
      '--attribution-view <view>',
      "how input attributions are compared: as Adebayo et al.'s code views them (sum |g|, clipped at the 99th percentile) or as the method's own map",
    )
      .choices(['adebayo', 'method'])
      .default('adebayo'),
    new Option('--depths <list>', 'layers randomised, counted from the logits (default 1, 2, 4, ... and all)').argParser(parseDepths),
    FLAGS.seed('seed of the random weights (0)'),
    modelFlags(),
    FLAGS.out('where the grid goes (default: <name>.sanity.png)'),
    FLAGS.json('print one JSON line per method and depth'),
    FLAGS.colormap(),
    runFlags(),
  )
    .addHelpText('after', '\nExample:\n  cameras sanity photo.jpg --methods cameras,gradcam,gradient --depths 1,2,4')
    .action(async (image: string, flags: SanityFlags) => (await import('./sanity.js')).sanityCommand(image, flags));
  withFlags(
    program
      .command('attack')
      .description(
        "the paper's saliency-guided attack: PGD toward a class with its perturbation pushed where the saliency map looks, beside the plain attack",
      )
      .argument('<images...>', 'JPEG, PNG or WebP photos, folders of them, or globs'),
    new Option('--target <class>', 'least-likely (default), untargeted, or a class index or label').default('least-likely'),
    new Option('--beta <n>', `weight of the saliency penalty beta * ||p * (1 - Psi)||_2 (the paper's 50; at most ${MAX_BETA})`)
      .argParser(parseFractionUpTo(MAX_BETA))
      .default(50),
    new Option('--saliency <method>', 'the method whose map (Psi) guides the attack').choices([...METHODS]).default(DEFAULT_METHOD),
    new Option('--norm <norm>', 'step and budget: linf (sign steps in a box) or l2 (normalised steps in a ball)')
      .choices(['linf', 'l2'])
      .default('linf'),
    new Option('--patience <n>', 'steps without progress after which beta halves (0: beta stays fixed, as in the paper)')
      .argParser(parseSeed)
      .default(10),
    new Option(
      '--epsilon <px>',
      'budget of the perturbation in pixel units (default: none beyond the pixel range; the attack stops on confidence and reports the norm)',
    ).argParser(parsePixels),
    new Option('--step <px>', 'step size in pixel units (default 1/255 for linf, 0.1 for l2)').argParser(parsePixels),
    new Option('--iterations <n>', `iteration cap, 1 to ${MAX_ITERATIONS}`).argParser(parseCountUpTo(MAX_ITERATIONS)).default(500),
    new Option('--confidence <p>', "stop once the target's probability reaches this").argParser(parseConfidence).default(0.9999),
    new Option('--random-start', 'start from a random point of the budget (seeded by --seed)'),
    FLAGS.seed('seed of the random start (0)'),
    modelFlags("target layer of the saliency method; default: the model's"),
    FLAGS.outDir('where the images and attack.jsonl go', 'attack'),
    FLAGS.json('print one JSON line per image'),
    FLAGS.colormap(),
    runFlags(),
  )
    .addHelpText('after', '\nExample:\n  cameras attack photo.jpg --target least-likely --beta 50 --saliency cameras')
    .action(async (images: string[], flags: AttackFlags) => (await import('./attack.js')).attackCommand(images, flags));
  withFlags(
    program
      .command('batch')
      .description('explain many images with several methods and models: here by default, or through BullMQ workers with --redis')
      .argument('[inputs...]', 'images, folders, globs, or a manifest (.csv with an image column, .jsonl with {"image": ...})'),
    FLAGS.methods([DEFAULT_METHOD]),
    FLAGS.model(),
    new Option('--models <list>', 'several models, each job once per model').argParser(parseList),
    FLAGS.weights(),
    FLAGS.class("class for every image (a manifest's class column wins); default: the top-1 class"),
    FLAGS.target(),
    FLAGS.outDir('where each job writes <image>.<method>.<key>.npy, .png and .json', 'batch'),
    FLAGS.redis('run the jobs through BullMQ on this Redis (redis://host:port); workers: cameras worker'),
    FLAGS.queue(),
    new Option('--status', "print the queue's counts and recent failures (with --redis)"),
    FLAGS.json('print one JSON line per job'),
    runFlags(),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  cameras batch photos/ --methods cameras,gradcam --out-dir maps/\n  cameras batch manifest.csv --redis redis://10.0.0.5:6379',
    )
    .action(async (inputs: string[], flags: BatchFlags) => (await import('./batch.js')).batchCommand(inputs, flags));
  withFlags(
    program.command('worker').description('process batch jobs from Redis (BullMQ), each in a sandboxed child process, until stopped'),
    FLAGS.redis('the Redis the batch was sent to (redis://host:port)').makeOptionMandatory(),
    FLAGS.queue(),
    new Option('--concurrency <n>', 'jobs at once, each in its own process').argParser(parseCount).default(1),
    new Option('--lock-ms <ms>', "how long a silent worker's job stays locked before another takes it over")
      .argParser(parseCount)
      .hideHelp(),
    FLAGS.threads('ONNX Runtime threads per job (default: all cores)'),
    FLAGS.quiet(),
  ).action(async (flags: WorkerFlags) => (await import('./batch.js')).workerCommand(flags));
  withFlags(
    program
      .command('serve')
      .description('serve the browser app (CAMERAS in the page, on your own images, nothing uploaded) on this machine'),
    new Option('--port <n>', 'port, 0 to 65535 (0: any free one)').argParser(parsePort).default(8080),
    new Option('--host <host>', 'address to listen on').default('127.0.0.1'),
    FLAGS.quiet(),
  ).action(async (flags: { port: number; host: string; quiet?: boolean }) => (await import('./serve.js')).serveCommand(flags));
  withFlags(program.command('methods').description('list the saliency methods, what each needs and its own options'), FLAGS.json()).action(
    (flags: { json?: boolean }) => {
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
    },
  );
  withFlags(program.command('models').description('list the built-in models'), FLAGS.json())
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
