import { availableParallelism } from 'node:os';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_METHOD, METHODS } from '../methods/registry.js';
import { DEFAULT_MODEL_NAME } from '../models/zoo.js';
import { COLORMAPS_NAMES } from '../render/colormap.js';

/** The CLI's flags, each spelled once: commands register them by group, a description or default adapted where they differ. */

function splitList(value: string, empty: string): string[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 0) throw new InvalidArgumentError(empty);
  return parts;
}

export function parseList(value: string): string[] {
  return splitList(value, 'the list is empty');
}

export function parseResolutions(value: string): number[] {
  return splitList(value, 'the resolution list is empty; give sizes such as 224,324,424').map((s) => {
    if (!/^\d+$/.test(s)) throw new InvalidArgumentError(`'${s}' is not a size; give integers such as 224,324,424`);
    return Number(s);
  });
}

export function parseOpacity(value: string): number {
  const v = Number(value);
  if (!(v >= 0 && v <= 1)) throw new InvalidArgumentError('expected a number between 0 and 1');
  return v;
}

export function parseDepths(value: string): number[] {
  return splitList(value, 'the depth list is empty; give depths such as 1,2,4').map((s) => {
    if (!/^\d+$/.test(s) || Number(s) < 1) throw new InvalidArgumentError(`'${s}' is not a depth; give positive integers such as 1,2,4`);
    return Number(s);
  });
}

export function parseFraction(value: string): number {
  const v = Number(value);
  if (!(Number.isFinite(v) && v >= 0)) throw new InvalidArgumentError('expected a number, 0 or more (e.g. 0.15)');
  return v;
}

/** A fraction at least 0 and below 1 (rollout's discard ratio). */
export function parseFractionBelow1(value: string): number {
  const v = Number(value);
  if (!(v >= 0 && v < 1)) throw new InvalidArgumentError('expected a fraction, at least 0 and below 1 (e.g. 0.9)');
  return v;
}

/** A positive number in pixel units (the image in [0, 1]); "8/255" reads as 8 / 255, "1e-3" as 0.001. */
export function parsePixels(value: string): number {
  const number = '(\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?)';
  const match = new RegExp(`^${number}(?:/${number})?$`, 'i').exec(value.trim());
  const v = match ? Number(match[1]) / (match[2] ? Number(match[2]) : 1) : Number.NaN;
  if (!(v > 0 && Number.isFinite(v))) throw new InvalidArgumentError('expected a positive number in pixel units, e.g. 0.1, 8/255 or 1e-3');
  return v;
}

/** A count from 1 to `max`, said as such. */
export function parseCountUpTo(max: number): (value: string) => number {
  return (value: string) => {
    const n = parseCount(value);
    if (n > max) throw new InvalidArgumentError(`expected at most ${max}`);
    return n;
  };
}

/** A number from 0 to `max` (e.g. a noise fraction or a weight). */
export function parseFractionUpTo(max: number): (value: string) => number {
  return (value: string) => {
    const v = parseFraction(value);
    if (v > max) throw new InvalidArgumentError(`expected at most ${max}`);
    return v;
  };
}

export function parseConfidence(value: string): number {
  const v = Number(value);
  if (!(v > 0 && v <= 1)) throw new InvalidArgumentError('expected a probability above 0 and at most 1, e.g. 0.9999');
  return v;
}

export function parseSeed(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(value);
}

/** A TCP port: 0 (any free one) to 65535. */
export function parsePort(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError('expected a port from 0 to 65535 (0: any free one)');
  return Number(value);
}

/** An index: 0, 1, 2... */
export function parseIndex(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected an index: 0, 1, 2...');
  return Number(value);
}

export function parseCount(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/** More intra-op threads than cores only slows ONNX Runtime down (999 on 2 cores: minutes for a 0.4 s pass). */
export function parseThreads(value: string): number {
  const threads = parseCount(value);
  const cores = availableParallelism();
  if (threads > cores)
    throw new InvalidArgumentError(
      `this machine has ${cores} cores; give at most ${cores} (more threads than cores slow ONNX Runtime down)`,
    );
  return threads;
}

/** Each shared flag, made anew per command (commander keeps an option's state); `text` adapts its description. */
export const FLAGS = {
  model: (text = "an .onnx file or a zoo name (see 'cameras models')") => new Option('--model <model>', text).default(DEFAULT_MODEL_NAME),
  weights: () =>
    new Option(
      '--weights <file.safetensors>',
      'state dict for a torchvision:<arch> model (F32, F16, BF16 or F64; integer buffers skipped)',
    ),
  layer: (text = "target layer: module or layer name (layer4, out_relu), node or tensor name; default: the model's") =>
    new Option('--layer <name>', text),
  threads: (text = 'ONNX Runtime threads (default: all cores)') => new Option('--threads <n>', text).argParser(parseThreads),
  quiet: () => new Option('--quiet', 'print nothing but errors'),
  json: (text = 'print JSON') => new Option('--json', text),
  class: (text = 'class to explain, by index or label; default: the top-1 class') => new Option('--class <class>', text),
  target: () =>
    new Option(
      '--target <target>',
      "what is explained: logit (default), prob, logprob, contrast:<class> (why this class rather than that one), on a dense output segment:<class>[:<mask.png>] (the class's scores summed over its predicted pixels, or over a mask), on a detector box:x1,y1,x2,y2[:label] (in image pixels; default label: the best-overlapping detection's)",
    ),
  detection: () =>
    new Option('--detection <i>', 'a detector: explain its i-th detection as listed, 0 the best (default: 0)').argParser(parseIndex),
  output: () => new Option('--output <name>', "the model output explained (default: its first; 'cameras layers' lists them)"),
  methods: (defaults: readonly string[], text = 'methods to run') =>
    new Option('--methods <list>', text).argParser(parseList).default([...defaults], defaults.join(',')),
  colormap: () => new Option('--colormap <name>', 'colours of the heat').choices([...COLORMAPS_NAMES]).default('turbo'),
  opacity: () => new Option('--opacity <0..1>', 'weight of the heat over the photo').argParser(parseOpacity).default(0.5),
  out: (text: string) => new Option('--out <picture.png>', text),
  outDir: (text: string, defaultFolder?: string) => {
    const option = new Option('--out-dir <folder>', text);
    return defaultFolder === undefined ? option : option.default(defaultFolder);
  },
  seed: (text: string) => new Option('--seed <n>', text).argParser(parseSeed),
  redis: (text: string) => new Option('--redis <url>', text),
  queue: () => new Option('--queue <name>', 'the BullMQ queue (default: cameras)'),
  method: () =>
    new Option('--method <name>', 'cameras, a CAM method (as pytorch-grad-cam computes it) or an input-gradient method ("cameras methods")')
      .choices([...METHODS])
      .default(DEFAULT_METHOD),
} as const;

/** The model a command explains: which, its weights, its layer. */
export const modelFlags = (layerText?: string, modelText?: string) => [FLAGS.model(modelText), FLAGS.weights(), FLAGS.layer(layerText)];

/** How a command runs: ONNX Runtime's threads, and whether it prints. */
export const runFlags = () => [FLAGS.threads(), FLAGS.quiet()];

/** How a picture is drawn. */
export const pictureFlags = () => [FLAGS.colormap(), FLAGS.opacity()];

/** Registers options on a command, in order. */
export function withFlags(command: Command, ...groups: (Option | Option[])[]): Command {
  for (const option of groups.flat()) command.addOption(option);
  return command;
}
