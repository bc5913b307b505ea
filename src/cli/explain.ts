import { access, constants, mkdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import sharp from 'sharp';
import { type Box, type Detection, type DetectionLayout, type DetectionTarget, parseBoxTarget, scaleBox } from '../engine/detections.js';
import { parseLayerView } from '../engine/layer-view.js';
import type { CamPostprocess } from '../engine/postprocess.js';
import { type Target, topK } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { Explainer, ExplainOptions } from '../explainer.js';
import { readNpyFile, writeFileAtomic, writeNpyFile } from '../io/files-node.js';
import { readImage } from '../io/image-node.js';
import type { FloatArray } from '../io/npy.js';
import type { RgbImage } from '../io/preprocess.js';
import { expandImages } from '../jobs/inputs.js';
import type { EigenSign } from '../methods/eigencam.js';
import type { ExplainResult } from '../methods/method.js';
import { DEFAULT_METHOD, methodByName } from '../methods/registry.js';
import type { HeadFusion } from '../methods/rollout.js';
import { classIndex, openExplainer, targetOf } from '../models/open-node.js';
import type { PositionResample } from '../onnx/position-embedding.js';
import type { ColormapName } from '../render/colormap.js';
import { overlayWithBar, type PanelRow, renderPanel } from '../render/panel-node.js';

export interface ExplainFlags {
  input?: string;
  model: string;
  method?: string;
  target?: string;
  samples?: number;
  noise?: number;
  seed?: number;
  smooth?: number;
  postprocess?: CamPostprocess;
  eigenSign?: EigenSign;
  headFusion?: HeadFusion;
  discardRatio?: number;
  multiScale?: boolean;
  models?: string[];
  weights?: string;
  layer?: string;
  class?: string;
  classes?: string[];
  top?: number;
  resolutions?: number[];
  preprocess?: string;
  output?: string;
  detection?: number;
  layout?: DetectionLayout;
  layerView?: string;
  positionResample?: PositionResample;
  saveMap?: string;
  out?: string;
  outDir?: string;
  json?: boolean;
  threads?: number;
  quiet?: boolean;
  panel?: boolean;
  scales?: boolean;
  colormap?: ColormapName;
  opacity?: number;
  colorbar?: boolean;
}

/** The picture in the format its file name asks for: PNG as made, JPEG or WebP converted (at quality 95). */
async function inFormatOf(path: string, png: Uint8Array): Promise<Uint8Array> {
  const extension = extname(path).toLowerCase();
  if (extension === '.png') return png;
  const image = sharp(png);
  return new Uint8Array(await (extension === '.webp' ? image.webp({ quality: 95 }) : image.jpeg({ quality: 95 })).toBuffer());
}

/** Fails before any work when an output could not be written. */
export async function checkWritable(path: string): Promise<void> {
  try {
    await access(dirname(resolve(path)), constants.W_OK);
  } catch {
    throw new CamerasError(`cannot write ${path}: its folder ${dirname(resolve(path))} does not exist or is not writable`);
  }
}

/**
 * Fails before any work when a folder could not be made or written, without making it: a command that is then
 * refused (a bad model, a class the model lacks) leaves nothing behind.
 */
export async function checkFolderWritable(folder: string): Promise<void> {
  const exists = await stat(folder).then(
    (info) => info.isDirectory(),
    () => false,
  );
  let nearest = resolve(folder);
  if (!exists)
    while (
      !(await stat(nearest).then(
        () => true,
        () => false,
      )) &&
      dirname(nearest) !== nearest
    )
      nearest = dirname(nearest);
  try {
    await access(nearest, constants.W_OK);
  } catch {
    throw new CamerasError(`cannot write in ${folder}: ${nearest} is not a writable folder`);
  }
}

/** The classes to explain for one input: --classes, --top k, --class, or the top-1 class. */
async function classesFor(flags: ExplainFlags, explainer: Explainer, tensor: FloatArray): Promise<(number | null)[]> {
  if (flags.classes) return flags.classes.map((c) => classIndex(c, explainer.profile));
  if (flags.top) {
    const output = explainer.profile.outputs.find((o) => o.name === (flags.output ?? explainer.profile.output));
    if (output?.shape && output.shape.length !== 2)
      throw new CamerasError(`--top ranks a classifier's classes; output '${output.name}' is not one: give --class or --classes`);
    // The class is picked where the method picks it: at the first resolution.
    const logits = await explainer.logits(tensor, (flags.resolutions ?? explainer.profile.resolutions)[0]);
    if (flags.top > logits.length)
      throw new CamerasError(`--top ${flags.top}: the model has ${logits.length} classes; give at most ${logits.length}`);
    return topK(logits, flags.top);
  }
  return [flags.class === undefined ? null : classIndex(flags.class, explainer.profile)];
}

/** The detection a detector's run explains, in image pixels, and what the detector found. */
interface ExplainedDetection {
  target: DetectionTarget;
  /** The explained box in the picture's pixels (the tensor's for --input), and its label's name. */
  box: Box;
  label: string;
  /** Every detection, boxes in the picture's pixels. */
  detections: (Detection & { name: string })[];
}

/**
 * On a detector: the detection to explain (--target box:..., --detection i, or the best one) and the detections
 * listed; undefined for other models when neither asks for one.
 */
async function detectionFor(
  flags: ExplainFlags,
  explainer: Explainer,
  tensor: FloatArray,
  picture: RgbImage | undefined,
): Promise<ExplainedDetection | undefined> {
  const given = flags.target === undefined ? undefined : parseBoxTarget(flags.target, (label) => classIndex(label, explainer.profile));
  if (flags.target !== undefined && flags.detection !== undefined)
    throw new CamerasError('--detection picks a detection to explain: give it or --target, not both');
  if (flags.target !== undefined && !given) return undefined;
  const format = await explainer.detector();
  if (!format) {
    if (given || flags.detection !== undefined)
      throw new CamerasError(
        `${given ? '--target box' : '--detection'} explains a detector's box; output '${explainer.profile.output}' of ${explainer.profile.name} is not a detector's predictions before NMS (name its layout with --layout if it is one)`,
      );
    return undefined;
  }
  if (flags.class !== undefined || (flags as ExplainFlags).classes || (flags as ExplainFlags).top)
    throw new CamerasError("a detector's class is its detection's label: leave out --class (and --classes, --top)");
  const [, , height, width] = tensor.shape as [number, number, number, number];
  const scaleX = picture ? picture.width / width : 1;
  const scaleY = picture ? picture.height / height : 1;
  const toPicture = (b: Box): Box => scaleBox(b, scaleX, scaleY);
  const name = (label: number) => explainer.profile.labels?.[label] ?? `class ${label}`;
  const found = await explainer.detect(tensor);
  const detections = found.map((d) => ({ ...d, box: toPicture(d.box), name: name(d.label) }));
  if (given) {
    const { target, box, label } = await explainer.boxTarget(given, tensor, picture);
    return { target, box: toPicture(box), label: name(label), detections };
  }
  const index = flags.detection ?? 0;
  if (detections.length === 0)
    throw new CamerasError(
      'the detector finds nothing above score 0.25 in this image; explain a box of your own: --target box:x1,y1,x2,y2:<label>',
    );
  if (index >= detections.length)
    throw new CamerasError(`--detection ${index}: the detector found ${detections.length} (0-${detections.length - 1})`);
  const chosen = found[index] as Detection;
  const target = await explainer.detectionTarget(chosen, { width, height });
  return { target, box: toPicture(chosen.box), label: name(chosen.label), detections };
}

/** The CLI flag of each library option, so errors and listings speak the user's language. */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  classIndex: '--class',
  output: '--output',
  resolutions: '--resolutions',
  perScale: '--scales',
  postprocess: '--postprocess',
  multiScale: '--multi-scale',
  eigenSign: '--eigen-sign',
  headFusion: '--head-fusion',
  discardRatio: '--discard-ratio',
  samples: '--samples',
  noise: '--noise',
  seed: '--seed',
  smooth: '--smooth',
};

/** A library error with its option names ('perScale') written as the flags that set them (--scales). */
function withFlagNames(error: unknown): unknown {
  if (!(error instanceof CamerasError)) return error;
  const message = error.message.replace(/'(\w+)'/g, (whole, name: string) => OPTION_FLAGS[name] ?? whole);
  return new CamerasError(message, error.exitCode);
}

/** Explains with library errors translated to flag names. */
async function explainWithFlags(explainer: Explainer, tensor: FloatArray, options: ExplainOptions): Promise<ExplainResult> {
  try {
    return await explainer.explain(tensor, options);
  } catch (error) {
    throw withFlagNames(error);
  }
}

/** The method's options from the flags: what the user gave is passed as is (a method refuses what it cannot honour, by name). */
function methodOptions(flags: ExplainFlags, target: Target | undefined): ExplainOptions {
  // --noise and --seed shape the NoiseTunnel when --smooth asks for one, else the method's own noise (smoothgrad).
  const noise = { noise: flags.noise, seed: flags.seed };
  return {
    method: methodByName(flags.method ?? DEFAULT_METHOD).name,
    target,
    output: flags.output,
    samples: flags.samples,
    ...(flags.smooth === undefined ? noise : { smooth: { samples: flags.smooth, ...noise } }),
    postprocess: flags.postprocess,
    eigenSign: flags.eigenSign,
    headFusion: flags.headFusion,
    discardRatio: flags.discardRatio,
    multiScale: flags.multiScale,
    resolutions: flags.resolutions,
    perScale: flags.scales,
  };
}

/** The class a result explains, with its label, and its probability where the output is a classifier's. */
function describeClass(explainer: Explainer, result: ExplainResult): string {
  if (result.classIndex === undefined) return result.target;
  const label = explainer.profile.labels?.[result.classIndex];
  return `class ${result.classIndex}${label ? ` (${label})` : ''}`;
}

function describe(explainer: Explainer, result: ExplainResult, multipleModels: boolean, named = true): string {
  const what = result.method === DEFAULT_METHOD || !named ? '' : `${result.method}, `;
  const target = result.target === 'logit' ? '' : `${result.target}, `;
  const probability = result.classProbability === undefined ? '' : `, p = ${result.classProbability.toFixed(3)}`;
  return `${multipleModels ? `${explainer.profile.name}: ` : ''}${what}${target}${describeClass(explainer, result)}${probability}${result.empty ? ', empty map' : ''}`;
}

export async function explainCommand(images: string[], flags: ExplainFlags): Promise<void> {
  if (images.length === 0 && !flags.input) throw new CamerasError('give an image file or --input <tensor.npy>');
  if (images.length > 0 && flags.input) throw new CamerasError('give either images or --input, not both');
  if (flags.opacity !== undefined && !(flags.opacity >= 0 && flags.opacity <= 1))
    throw new CamerasError('--opacity must be between 0 and 1');
  const paths = await expandImages(images);
  const many = paths.length > 1;
  if (many && (flags.out || flags.saveMap))
    throw new CamerasError('--out and --save-map name one file: with several images, use --out-dir');
  if (flags.input && (flags.models?.length ?? 0) > 1)
    throw new CamerasError('--models needs an image: each model preprocesses it its own way');
  if (flags.top !== undefined && (flags.class !== undefined || flags.classes))
    throw new CamerasError('--top picks the classes itself: give --top or --class/--classes, not both');
  if (flags.class !== undefined && flags.classes) throw new CamerasError('give --class or --classes, not both');
  const modelSpecs = flags.models ?? [flags.model];
  if (flags.weights && !modelSpecs.some((spec) => spec.startsWith('torchvision:')))
    throw new CamerasError('--weights is the state dict of a torchvision:<arch> model; this model does not take it');
  if (flags.out && !/\.(png|jpe?g|webp)$/i.test(flags.out)) throw new CamerasError(`--out ${flags.out}: name a .png, .jpg or .webp file`);
  const panel = !!(flags.panel || flags.scales || flags.classes || flags.top || modelSpecs.length > 1);
  const outputFor = (path: string | undefined): string | undefined => {
    if (flags.out) return flags.out;
    if (!path || (!many && (flags.saveMap || flags.json))) return undefined;
    // Named after the method, so the maps of several methods sit side by side (`photo.cameras.png`, `photo.gradcam.png`).
    return join(flags.outDir ?? '.', `${basename(path, extname(path))}.${methodByName(flags.method ?? DEFAULT_METHOD).name}.png`);
  };
  if (flags.outDir) {
    await mkdir(flags.outDir, { recursive: true }).catch(() => undefined);
    await checkWritable(join(flags.outDir, 'x'));
  }
  for (const path of [outputFor(paths[0]), flags.saveMap]) if (path) await checkWritable(path);

  const models: Explainer[] = [];
  for (const spec of modelSpecs) {
    models.push(
      await openExplainer(spec, {
        weights: flags.weights,
        layer: modelSpecs.length > 1 ? undefined : flags.layer,
        threads: flags.threads,
        profile: {
          preprocess: flags.preprocess,
          layerView: flags.layerView === undefined ? undefined : parseLayerView(flags.layerView),
          detectionLayout: flags.layout,
          positionResample: flags.positionResample,
        },
      }),
    );
  }
  const showProgress = !flags.quiet && !flags.json && process.stderr.isTTY;
  const bar = showProgress
    ? new SingleBar({ format: 'explaining {bar} {percentage}% | {job}/{jobs} {image}', hideCursor: true, clearOnComplete: true })
    : undefined;
  const jobs = models.length * (flags.classes?.length ?? flags.top ?? 1) * Math.max(paths.length, 1);
  // Each explain is 100 steps of the bar, advanced by the method's own progress (scales, samples, channels).
  let job = 0;
  const explainImage = async (path: string | undefined) => {
    const started = performance.now();
    const picture: RgbImage | undefined = path ? await readImage(path) : undefined;
    const rows: PanelRow[] = [];
    const results: Explained[] = [];
    for (const model of models) {
      const tensor = picture ? model.preprocess(picture) : await readNpyFile(flags.input as string);
      const detection = await detectionFor(flags, model, tensor, picture);
      const target = detection?.target ?? (flags.target === undefined ? undefined : await targetOf(flags.target, model));
      for (const cls of detection ? [null] : await classesFor(flags, model, tensor)) {
        const base = job++ * 100;
        bar?.update(base, { image: path ? basename(path) : 'tensor', job });
        const explaining = performance.now();
        const result = await explainWithFlags(model, tensor, {
          ...methodOptions(flags, target),
          classIndex: cls,
          onProgress: (done, total) => bar?.update(base + Math.round((100 * done) / total)),
        });
        results.push({ model, result, seconds: (performance.now() - explaining) / 1000, detection });
        const boxes = detection ? [{ box: detection.box, label: detection.label }] : undefined;
        if (picture)
          rows.push({ title: describe(model, result, models.length > 1), image: picture, map: result, scales: result.scaleMaps, boxes });
      }
    }
    const first = results[0] as Explained;
    const out = outputFor(path);
    if (flags.saveMap) await writeNpyFile(flags.saveMap, { data: first.result.map, shape: [first.result.height, first.result.width] });
    if (out) {
      const pictureOptions = { colormap: flags.colormap, opacity: flags.opacity, colorbar: flags.colorbar };
      const boxes = first.detection ? [{ box: first.detection.box, label: first.detection.label }] : undefined;
      const png =
        panel && picture
          ? await renderPanel(rows, pictureOptions)
          : await overlayWithBar(first.result, picture, { ...pictureOptions, boxes });
      await writeFileAtomic(out, await inFormatOf(out, png));
    }
    // Each image's own time: reading it, explaining it, writing its outputs.
    return () => report(flags, results, path, out, many, (performance.now() - started) / 1000);
  };
  let failed = 0;
  try {
    for (const path of paths.length > 0 ? paths : [undefined]) {
      bar?.start(jobs * 100, job * 100, { image: path ? basename(path) : 'tensor', job, jobs });
      let printReport: (() => void) | undefined;
      let failure: CamerasError | undefined;
      try {
        printReport = await explainImage(path);
      } catch (error) {
        // In a run over many images one bad image is reported and skipped; the rest still run.
        if (!many || !(error instanceof CamerasError)) throw error;
        failure = error;
        failed++;
        job = (paths.indexOf(path as string) + 1) * (jobs / paths.length);
      }
      bar?.stop();
      printReport?.();
      if (failure) {
        process.stderr.write(`cameras: error: ${path}: ${failure.message}\n`);
        if (flags.json) process.stdout.write(`${JSON.stringify({ image: path, error: failure.message })}\n`);
      }
      // Not on a terminal (a log, CI, a pipe), a folder's progress is a line per image.
      if (many && !flags.quiet && !process.stderr.isTTY)
        process.stderr.write(`explain ${paths.indexOf(path as string) + 1}/${paths.length} ${basename(path as string)}\n`);
    }
  } finally {
    bar?.stop();
    for (const model of models) await model.dispose();
  }
  if (failed > 0) throw new CamerasError(`${failed} of ${paths.length} images failed (each named above); the others were written`);
}

/** One explained map, with its model, time and, on a detector, the detection. */
interface Explained {
  model: Explainer;
  result: ExplainResult;
  seconds: number;
  detection?: ExplainedDetection;
}

const rounded = (box: Box) => box.map((v) => Math.round(v * 10) / 10);

function report(
  flags: ExplainFlags,
  results: Explained[],
  path: string | undefined,
  out: string | undefined,
  many: boolean,
  total: number,
): void {
  // One map: the image's whole time (reading, explaining, writing); several: each map's own explain time.
  const timeOf = (own: number) => (results.length > 1 ? own : total);
  if (flags.json) {
    for (const { model, result, seconds: own, detection } of results) {
      const seconds = timeOf(own);
      const line = {
        ...(many ? { image: path } : {}),
        model: model.profile.name,
        layer: model.layer.name,
        method: result.method,
        target: result.target,
        output: result.output,
        ...(result.classIndex !== undefined ? { class: result.classIndex } : {}),
        ...(result.classPerResolution
          ? { classPerResolution: result.classPerResolution, probPerResolution: result.probPerResolution }
          : {}),
        ...(detection
          ? {
              box: rounded(detection.box),
              label: detection.label,
              detections: detection.detections.map((d) => ({ box: rounded(d.box), label: d.name, score: Math.round(d.score * 1e4) / 1e4 })),
            }
          : {}),
        usedResolutions: result.usedResolutions,
        empty: result.empty,
        seconds: Math.round(seconds * 1000) / 1000,
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    return;
  }
  if (flags.quiet) return;
  const lines: string[] = [];
  for (const { model, result, seconds: own, detection } of results) {
    const seconds = timeOf(own);
    if (detection) {
      lines.push(
        `${many ? `${path}: ` : ''}${detection.detections.length} detection${detection.detections.length === 1 ? '' : 's'} (objectness x class score above 0.25):`,
        ...detection.detections.slice(0, 10).map((d, i) => `  #${i} ${d.name} ${d.score.toFixed(3)} at ${rounded(d.box).join(',')}`),
        ...(detection.detections.length > 10 ? [`  ... ${detection.detections.length - 10} more (--json lists all)`] : []),
      );
    }
    const smoothed = flags.smooth ? `, smoothed over ${flags.smooth} noisy copies (NoiseTunnel)` : '';
    const label = result.classIndex !== undefined ? model.profile.labels?.[result.classIndex] : undefined;
    const what =
      detection !== undefined
        ? `${detection.label} at ${rounded(detection.box).join(',')}`
        : result.classIndex === undefined
          ? result.target
          : `class ${result.classIndex}${label ? ` (${label}${model.profile.labelsAssumed ? ', ImageNet label assumed' : ''})` : ''}${isRegion(result) ? `, region ${result.target}` : ''}`;
    lines.push(
      `${many ? `${path}: ` : ''}${what} ${methodByName(result.method).needs.some((n) => n.startsWith('attention')) ? 'through the attention blocks' : `at layer ${model.layer.name}`}${results.length > 1 || flags.models ? ` of ${model.profile.name}` : ''}, ${methodByName(result.method).multiResolution ? `fused from ${result.usedResolutions.join(', ')} px` : `${result.method} at ${result.usedResolutions.join(', ')} px`}${smoothed} in ${seconds.toFixed(2)} s`,
    );
    if (result.empty) lines.push('the map is empty: no region raises this class at this layer (all zero after ReLU)');
  }
  if (out) lines.push(`wrote ${out}`);
  if (flags.saveMap) lines.push(`wrote ${flags.saveMap}`);
  if (!out && !flags.saveMap)
    lines.push('no file written: an --input tensor has no picture to draw on; add --save-map map.npy to keep the map');
  process.stdout.write(`${lines.join('\n')}\n`);
}

const isRegion = (result: ExplainResult) => result.target.startsWith('segment:');

export interface CompareFlags {
  model: string;
  weights?: string;
  layer?: string;
  class?: string;
  methods: string[];
  target?: string;
  detection?: number;
  out?: string;
  colormap?: ColormapName;
  opacity?: number;
  threads?: number;
  quiet?: boolean;
}

/** One picture with a row per method on one photo, each titled with its class and time. */
export async function compareCommand(image: string, flags: CompareFlags): Promise<void> {
  for (const method of flags.methods) methodByName(method);
  const out = flags.out ?? `${basename(image, extname(image))}.compare.png`;
  if (!/\.(png|jpe?g|webp)$/i.test(out)) throw new CamerasError(`--out ${out}: name a .png, .jpg or .webp file`);
  await checkWritable(out);
  const explainer = await openExplainer(flags.model, { weights: flags.weights, layer: flags.layer, threads: flags.threads });
  const picture = await readImage(image);
  const tensor = explainer.preprocess(picture);
  try {
    const classIndexOrTop = flags.class === undefined ? null : classIndex(flags.class, explainer.profile);
    // On a detector every row explains one detection: the best, --detection i, or a --target box.
    const detection = await detectionFor({ ...flags, model: flags.model }, explainer, tensor, picture);
    const target = detection?.target ?? (flags.target === undefined ? undefined : await targetOf(flags.target, explainer));
    const boxes = detection ? [{ box: detection.box, label: detection.label }] : undefined;
    const rows: PanelRow[] = [];
    for (const method of flags.methods) {
      const started = performance.now();
      const result = await explainWithFlags(explainer, tensor, { method, classIndex: detection ? null : classIndexOrTop, target });
      const seconds = (performance.now() - started) / 1000;
      // The row names its method first, so the description does not name it again.
      const what = detection ? `${detection.label} at ${rounded(detection.box).join(',')}` : describe(explainer, result, false, false);
      rows.push({ title: `${method}: ${what}, ${seconds.toFixed(2)} s`, image: picture, map: result, boxes });
      if (!flags.quiet) process.stdout.write(`${method}: ${seconds.toFixed(2)} s${result.empty ? ' (empty map)' : ''}\n`);
    }
    await writeFileAtomic(out, await inFormatOf(out, await renderPanel(rows, { colormap: flags.colormap, opacity: flags.opacity })));
    if (!flags.quiet) process.stdout.write(`wrote ${out}\n`);
  } finally {
    await explainer.dispose();
  }
}
