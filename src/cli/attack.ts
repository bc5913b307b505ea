import { appendFile, mkdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import type { PgdResult } from '../attacks/pgd.js';
import { type SaliencyAttackResult, saliencyGuidedAttack } from '../attacks/saliency-attack.js';
import { softmax, topOne } from '../engine/scores.js';
import { CamerasError, ExitCode } from '../errors.js';
import type { Explainer } from '../explainer.js';
import { writeFileAtomic } from '../io/files-node.js';
import { readImage } from '../io/image-node.js';
import { type RgbImage, resizeLinearUint8 } from '../io/preprocess.js';
import { expandImages } from '../jobs/inputs.js';
import { methodByName } from '../methods/registry.js';
import { classIndex, openExplainer } from '../models/open-node.js';
import type { ColormapName } from '../render/colormap.js';
import { renderPanel } from '../render/panel-node.js';
import { checkWritable } from './explain.js';
import { Progress } from './progress.js';
import { formatTable } from './table.js';

export interface AttackFlags {
  model: string;
  weights?: string;
  layer?: string;
  /** least-likely (default), untargeted, or a class index or label. */
  target: string;
  beta: number;
  saliency: string;
  norm: 'l2' | 'linf';
  epsilon?: number;
  step?: number;
  iterations: number;
  patience: number;
  confidence: number;
  randomStart?: boolean;
  seed?: number;
  outDir: string;
  json?: boolean;
  colormap?: ColormapName;
  threads?: number;
  quiet?: boolean;
}

interface AttackRecord {
  image: string;
  originalClass: string;
  targetClass: string;
  guided: Summary;
  plain: Summary;
  /** 1 - ||p_guided||_2 / ||p_plain||_2, when both succeed. */
  l2Reduction?: number;
  seconds: number;
}

type Summary = Pick<PgdResult, 'success' | 'iterations' | 'probability' | 'l2' | 'linf' | 'finalBeta'> & { finalClass: string };

const PNG = { compressionLevel: 9 } as const;

function pngOf(image: RgbImage): Promise<Buffer> {
  return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .png(PNG)
    .toBuffer();
}

/** The perturbation amplified to be seen: 0.5 + p / (2 max |p|), grey where nothing changed. */
function amplified(result: PgdResult, bgr: boolean | undefined): RgbImage {
  const { width, height } = result.image;
  const plane = width * height;
  let peak = 0;
  for (const v of result.perturbation) peak = Math.max(peak, Math.abs(v));
  const data = new Uint8Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const to = bgr ? 2 - c : c;
    for (let p = 0; p < plane; p++)
      data[p * 3 + to] = Math.round(255 * (0.5 + (peak > 0 ? (result.perturbation[c * plane + p] as number) / (2 * peak) : 0)));
  }
  return { data, width, height };
}

/**
 * Writes the adversarial image as PNG, reads it back, preprocesses and classifies it: a success is reported only
 * when the file itself reaches the target at the confidence.
 */
async function writeAndVerify(
  path: string,
  result: PgdResult,
  explainer: Explainer,
  confidence: number,
  targeted: boolean,
): Promise<boolean> {
  await writeFileAtomic(path, new Uint8Array(await pngOf(result.image)));
  const reread = await readImage(path);
  const logits = (await explainer.forward([explainer.preprocess(reread)]))[0] as Float32Array;
  const top = topOne(logits);
  const probability = targeted ? (softmax(logits)[result.targetClass] as number) : top.probability;
  return targeted ? probability >= confidence : top.index !== result.originalClass && probability >= confidence;
}

export async function attackCommand(images: string[], flags: AttackFlags): Promise<void> {
  methodByName(flags.saliency);
  const paths = await expandImages(images);
  await mkdir(flags.outDir, { recursive: true }).catch(() => undefined);
  await checkWritable(join(flags.outDir, 'x'));
  const model = await openExplainer(flags.model, { weights: flags.weights, layer: flags.layer, threads: flags.threads });
  const { profile } = model;
  const goal =
    flags.target === 'least-likely' || flags.target === 'untargeted' ? flags.target : { class: classIndex(flags.target, profile) };
  const name = (index: number) => `${index}${profile.labels?.[index] ? ` (${profile.labels[index]})` : ''}`;
  const bar = new Progress('attack', flags.quiet, 'attacking {bar} {value}/{total} images | ETA {eta_formatted} | {image}');
  bar.start(paths.length, 0, { image: '' });
  const records: AttackRecord[] = [];
  const failures: string[] = [];
  const results = join(flags.outDir, 'attack.jsonl');
  // A record per image as it finishes: a run stopped (or an image failing) late keeps what was done.
  await writeFileAtomic(results, new Uint8Array());
  const stems = new Set<string>();
  try {
    for (const path of paths) {
      const started = performance.now();
      let image: RgbImage;
      try {
        image = resizeLinearUint8(await readImage(path), profile.inputSize, profile.inputSize);
      } catch (error) {
        if (!(error instanceof CamerasError)) throw error;
        failures.push(error.message);
        bar.increment(basename(path));
        continue;
      }
      const result: SaliencyAttackResult = await saliencyGuidedAttack(model, image, model.preset, {
        goal,
        beta: flags.beta,
        method: flags.saliency,
        norm: flags.norm,
        epsilon: flags.epsilon,
        stepSize: flags.step,
        iterations: flags.iterations,
        patience: flags.patience,
        confidence: flags.confidence,
        randomStart: flags.randomStart,
        seed: flags.seed,
      });
      // Two images of one name (dog.jpg and dog.png, or from two folders) get their own files.
      let stem = join(flags.outDir, basename(path, extname(path)));
      for (let n = 2; stems.has(stem); n++) stem = join(flags.outDir, `${basename(path, extname(path))}-${n}`);
      stems.add(stem);
      const targeted = goal !== 'untargeted';
      const plain = result.plain as PgdResult;
      const guidedOk = await writeAndVerify(`${stem}.adversarial.png`, result.guided, model, flags.confidence, targeted);
      const plainOk = await writeAndVerify(`${stem}.plain.png`, plain, model, flags.confidence, targeted);
      await writeFileAtomic(`${stem}.perturbation.png`, new Uint8Array(await pngOf(amplified(result.guided, model.preset.bgr))));
      const caption = (r: PgdResult, what: string) =>
        `${what}: class ${name(r.finalClass)}, target p = ${r.probability.toFixed(4)}, ||p||2 = ${r.l2.toFixed(2)}`;
      const panel = await renderPanel(
        [
          { title: `clean: class ${name(result.guided.originalClass)}, ${flags.saliency} map (Psi)`, image, map: result.before },
          { title: caption(result.guided, `guided (beta ${flags.beta})`), image: result.guided.image, map: result.after },
        ],
        { colormap: flags.colormap },
      );
      await writeFileAtomic(`${stem}.attack.png`, panel);
      const summary = (r: PgdResult, ok: boolean): Summary => ({
        success: r.success && ok,
        iterations: r.iterations,
        probability: r.probability,
        l2: r.l2,
        linf: r.linf,
        finalBeta: r.finalBeta,
        finalClass: name(r.finalClass),
      });
      const record: AttackRecord = {
        image: path,
        originalClass: name(result.guided.originalClass),
        targetClass: targeted ? name(result.guided.targetClass) : 'untargeted',
        guided: summary(result.guided, guidedOk),
        plain: summary(plain, plainOk),
        ...(guidedOk && plainOk && result.l2Reduction !== undefined ? { l2Reduction: result.l2Reduction } : {}),
        seconds: Math.round(performance.now() - started) / 1000,
      };
      records.push(record);
      await appendFile(results, `${JSON.stringify(record)}\n`);
      if (flags.json) process.stdout.write(`${JSON.stringify(record)}\n`);
      bar.increment(basename(path));
    }
  } finally {
    bar.stop();
    await model.dispose();
  }
  for (const failure of failures) process.stderr.write(`failed: ${failure}\n`);
  // Images that could not be read are bad input: the usage exit code, after the others are done.
  if (failures.length > 0) process.exitCode = ExitCode.usage;
  if (flags.json || flags.quiet) return;
  const fmt = (v: number) => v.toFixed(3);
  const rows = records.map((r) => [
    basename(r.image),
    r.targetClass,
    r.plain.success ? `yes (${r.plain.iterations})` : 'no',
    fmt(r.plain.l2),
    r.guided.success ? `yes (${r.guided.iterations})` : 'no',
    fmt(r.guided.l2),
    r.l2Reduction === undefined ? '-' : `${(100 * r.l2Reduction).toFixed(1)}%`,
  ]);
  const both = records.filter((r) => r.l2Reduction !== undefined);
  const rate = (pick: (r: AttackRecord) => boolean) => `${records.filter(pick).length}/${records.length}`;
  process.stdout.write(
    `${formatTable(['image', 'target', 'plain success (steps)', 'plain L2', 'guided success (steps)', 'guided L2', 'L2 reduction'], rows)}\n` +
      `success: plain ${rate((r) => r.plain.success)}, guided ${rate((r) => r.guided.success)}; mean L2 reduction where both succeed: ${
        both.length
          ? `${((100 * both.reduce((s, r) => s + (r.l2Reduction as number), 0)) / both.length).toFixed(1)}% over ${both.length}`
          : '-'
      } (the paper: about 56.5% on ResNet-50/ImageNet)\n` +
      `wrote ${flags.outDir}/<image>.adversarial.png, .plain.png, .perturbation.png, .attack.png and attack.jsonl\n`,
  );
}
