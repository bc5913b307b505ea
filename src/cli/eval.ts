import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import { type DatasetItem, loadDataset } from '../datasets/load-node.js';
import { classesIn, classMask, isDifficultPair } from '../datasets/mask.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import { softmax } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import { writeFileAtomic } from '../io/files-node.js';
import { readImage } from '../io/image-node.js';
import { preprocess } from '../io/preprocess.js';
import { methodByName } from '../methods/registry.js';
import { confidenceChange } from '../metrics/confidence-change.js';
import { densities, maskedInputs } from '../metrics/density.js';
import { causalMetric } from '../metrics/insertion-deletion.js';
import { PointingGameScore, pointingHit, pointOf } from '../metrics/pointing-game.js';
import { road } from '../metrics/road.js';
import { gaussian } from '../random.js';
import { curvesSpec, renderSvg } from '../render/plots.js';
import { DEFAULT_METRICS, METRICS, type Metric } from './eval-metrics.js';
import { checkWritable, classIndex, type LoadedModel, loadModel } from './explain.js';
import { formatTable } from './table.js';

export { DEFAULT_METRICS, METRICS };

export interface EvalFlags {
  model: string;
  weights?: string;
  layer?: string;
  methods: string[];
  metrics: string[];
  outDir: string;
  tolerance: number;
  /** Insertion and deletion follow the annotated class instead of the model's top-1 (RISE's choice, the default). */
  annotatedClass?: boolean;
  limit?: number;
  threads?: number;
  quiet?: boolean;
}

/** One line of results.jsonl: one image, class and method. */
interface EvalRecord {
  image: string;
  class: string;
  method: string;
  pointing?: 1 | 0 | -1;
  /** In the pointing game's 'difficult' subset (class region < 1/4 of the image, another class present). */
  difficult?: boolean;
  rhoPlus?: number;
  rhoMinus?: number;
  /** pytorch-grad-cam's confidence change: P(x * map) - P(x) for the explained class. */
  confidence?: number;
  /** ROAD combined, (LeRF - MoRF) / 2 over percentiles 10..90, noise seeded per record. */
  road?: number;
  deletion?: number;
  insertion?: number;
  /** The probability after each step (4 decimals), for the mean curves of the report. */
  deletionCurve?: number[];
  insertionCurve?: number[];
  seconds: number;
}

const key = (r: { image: string; class: string; method: string }) => `${r.image}\u0000${r.class}\u0000${r.method}`;

/** What a results.jsonl was made with: a rerun with other settings would mix results, so it is refused. */
interface EvalSettings {
  settings: { model: string; layer: string; metrics: string[]; tolerance: number; annotatedClass: boolean; size: number };
}

/**
 * `cameras eval`: every method on every annotated (image, class) of a data set, scored by the chosen metrics;
 * one JSON line per result in `<out-dir>/results.jsonl`, appended as it is made, so a stopped run resumes; then a
 * summary per method on stdout, in summary.csv and summary.json.
 */
export async function evalCommand(dataset: string, flags: EvalFlags): Promise<void> {
  for (const method of flags.methods) methodByName(method);
  for (const metric of flags.metrics)
    if (!(METRICS as readonly string[]).includes(metric))
      throw new CamerasError(`unknown metric '${metric}'; choose from: ${METRICS.join(', ')}`);
  const metrics = new Set(flags.metrics as Metric[]);
  const items = (await loadDataset(dataset)).slice(0, flags.limit);
  await mkdir(flags.outDir, { recursive: true }).catch(() => undefined);
  await checkWritable(join(flags.outDir, 'results.jsonl'));
  const model = await loadModel(flags.model, { weights: flags.weights, layer: flags.layer, threads: flags.threads });
  const { explainer, preset, size } = model;
  const resultsFile = join(flags.outDir, 'results.jsonl');
  const settings: EvalSettings = {
    settings: {
      model: flags.model,
      layer: explainer.layer.name,
      metrics: [...flags.metrics].sort(),
      tolerance: flags.tolerance,
      annotatedClass: !!flags.annotatedClass,
      size,
    },
  };
  // Every class must be one the model can explain, checked before any work.
  for (const item of items)
    for (const c of classesIn(item.annotation)) {
      try {
        classIndex(c, model);
      } catch {
        await explainer.dispose();
        throw new CamerasError(
          `class '${c}' of ${item.image} is not one of the model's labels; give a model whose labels name the data set's classes`,
        );
      }
    }
  const previous = await previousRecords(resultsFile, settings);
  // Images are named relative to the data set, so a rerun from elsewhere resumes the same records.
  const relativeName = (item: DatasetItem) => relativePath(dataset, item.image);
  const jobs = items.flatMap((item) =>
    classesIn(item.annotation).flatMap((c) => flags.methods.map((method) => ({ item, className: c, method }))),
  );
  const wanted = new Set(jobs.map((j) => key({ image: relativeName(j.item), class: j.className, method: j.method })));
  // The latest record of each of this run's pairs (a pair recorded twice counts once).
  const byKey = new Map(previous.filter((r) => wanted.has(key(r))).map((r) => [key(r), r]));
  const done = new Set(byKey.keys());
  if (previous.length === 0 && !(await readFile(resultsFile, 'utf8').catch(() => '')))
    await writeFileAtomic(resultsFile, new TextEncoder().encode(`${JSON.stringify(settings)}\n`));
  else await ensureNewline(resultsFile);
  const bar =
    !flags.quiet && process.stderr.isTTY
      ? new SingleBar({
          format: 'evaluating {bar} {value}/{total} | ETA {eta_formatted} | {image}',
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
  bar?.start(jobs.length, done.size, { image: '' });
  try {
    let current: { item: DatasetItem; tensor: ReturnType<typeof preprocess> } | undefined;
    for (const job of jobs) {
      const id = { image: relativeName(job.item), class: job.className, method: job.method };
      if (done.has(key(id))) continue;
      bar?.update({ image: id.image });
      if (current?.item !== job.item) {
        const picture = await readImage(job.item.image);
        const { width, height } = job.item.annotation;
        if (picture.width !== width || picture.height !== height)
          throw new CamerasError(
            `${job.item.image} is ${picture.width} x ${picture.height} but its annotation says ${width} x ${height}; fix the annotation's <size> (or the image's EXIF orientation)`,
          );
        current = { item: job.item, tensor: preprocess(picture, preset, size) };
      }
      const record = { ...(await scoreOne(model, current.tensor, job.item, job.className, job.method, metrics, flags)), image: id.image };
      await appendFile(resultsFile, `${JSON.stringify(record)}\n`);
      byKey.set(key(record), record);
      bar?.increment();
    }
  } finally {
    bar?.stop();
    await explainer.dispose();
  }
  const classes = [...new Set(items.flatMap((i) => classesIn(i.annotation)))].sort();
  const records = [...byKey.values()];
  const summary = summarise(records, flags.methods, classes);
  const header = ['method', 'pointing', 'pointing (difficult)', 'rho+', 'rho-', 'deletion', 'insertion', 'confidence', 'road', 'pairs'];
  const rows = summary.map((s) => [
    s.method,
    fmt(s.pointing),
    fmt(s.pointingDifficult),
    fmt(s.rhoPlus),
    fmt(s.rhoMinus),
    fmt(s.deletion),
    fmt(s.insertion),
    fmt(s.confidence),
    fmt(s.road),
    String(s.pairs),
  ]);
  await writeFileAtomic(
    join(flags.outDir, 'summary.csv'),
    new TextEncoder().encode(`${[header, ...rows].map((r) => r.join(',')).join('\n')}\n`),
  );
  await writeFileAtomic(join(flags.outDir, 'summary.json'), new TextEncoder().encode(`${JSON.stringify(summary, null, 1)}\n`));
  const plotted = await writeReport(
    flags.outDir,
    records,
    flags.methods,
    header,
    rows,
    `${items.length} images, ${classes.length} classes, model ${flags.model}`,
  );
  if (flags.quiet) return;
  process.stdout.write(
    `${items.length} images, ${classes.length} classes, model ${flags.model}\n${formatTable(header, rows)}\nwrote ${join(flags.outDir, 'summary.csv')}, summary.json, results.jsonl${plotted ? ', insertion_deletion.svg' : ''} and report.html\n`,
  );
}

function fmt(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(3);
}

/** The records of an earlier run with the same settings; one with other settings is refused. */
async function previousRecords(file: string, settings: EvalSettings): Promise<EvalRecord[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const lines = text.split('\n').filter(Boolean);
  if (lines.length === 0) return [];
  const parse = (line: string) => {
    try {
      return JSON.parse(line) as EvalRecord & Partial<EvalSettings>;
    } catch {
      return undefined; // a line cut short by a stop: its pair is done again
    }
  };
  const header = parse(lines[0] as string);
  if (JSON.stringify(header?.settings) !== JSON.stringify(settings.settings))
    throw new CamerasError(
      `${file} was made with other settings (${JSON.stringify(header?.settings ?? 'none')}); use another --out-dir, or the same --model, --layer, --metrics and --tolerance`,
    );
  return lines.slice(1).flatMap((line) => {
    const record = parse(line);
    return record ? [record] : [];
  });
}

/** A file cut short mid-line gets its newline back, so the next record starts a line of its own. */
async function ensureNewline(file: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  if (text.length > 0 && !text.endsWith('\n')) await appendFile(file, '\n');
}

function relativePath(root: string, file: string): string {
  const base = resolve(root.endsWith('.json') ? dirname(root) : root);
  const path = relative(base, resolve(file));
  return path.startsWith('..') ? resolve(file) : path;
}

async function scoreOne(
  model: LoadedModel,
  tensor: ReturnType<typeof preprocess>,
  item: DatasetItem,
  className: string,
  method: string,
  metrics: Set<Metric>,
  flags: EvalFlags,
): Promise<EvalRecord> {
  const started = performance.now();
  const cls = classIndex(className, model);
  const result = await model.explainer.explain(tensor, {
    method,
    classIndex: cls,
    ...(method === 'cameras' ? { resolutions: model.resolutions } : {}),
  });
  const record: EvalRecord = { image: item.image, class: className, method, seconds: 0 };
  const { width, height } = item.annotation;
  if (metrics.has('pointing')) {
    const mask = classMask(item.annotation, className);
    record.pointing = mask ? pointingHit(mask, pointOf(result.map, result.height, result.width, height, width), flags.tolerance) : 0;
    record.difficult = mask ? isDifficultPair(item.annotation, className, mask) : false;
  }
  const [, , h, w] = tensor.shape as [number, number, number, number];
  const map = result.height === h && result.width === w ? result.map : resizePlaneBilinear(result.map, result.height, result.width, h, w);
  const forward = (inputs: ReturnType<typeof preprocess>[]) => model.explainer.forward(inputs);
  if (metrics.has('density')) {
    const { kept, removed } = maskedInputs(tensor.data, tensor.shape[1] as number, map);
    const [a, b] = await forward([
      { data: kept, shape: tensor.shape },
      { data: removed, shape: tensor.shape },
    ]);
    const d = densities(softmax(a as Float32Array)[cls] as number, softmax(b as Float32Array)[cls] as number, map);
    record.rhoPlus = d.positive;
    record.rhoMinus = d.negative;
  }
  if (metrics.has('road')) record.road = (await road(forward, tensor, map, cls, { random: gaussian(0) })).combined;
  if (metrics.has('confidence')) record.confidence = await confidenceChange(forward, tensor, map, cls, 'prob');
  if (metrics.has('insdel')) {
    const round = (scores: number[]) => scores.map((v) => Math.round(v * 1e4) / 1e4);
    // RISE follows the model's top-1 class on the clean input; --annotated-class follows the explained class.
    const followed = flags.annotatedClass ? { classIndex: cls } : {};
    const deletion = await causalMetric(forward, tensor, map, 'deletion', followed);
    const insertion = await causalMetric(forward, tensor, map, 'insertion', followed);
    Object.assign(record, {
      deletion: deletion.auc,
      insertion: insertion.auc,
      deletionCurve: round(deletion.scores),
      insertionCurve: round(insertion.scores),
    });
  }
  record.seconds = Math.round(performance.now() - started) / 1000;
  return record;
}

interface MethodSummary {
  method: string;
  pointing?: number;
  /** The pointing game on the 'difficult' subset alone (undefined when no pair is in it). */
  pointingDifficult?: number;
  rhoPlus?: number;
  rhoMinus?: number;
  deletion?: number;
  insertion?: number;
  confidence?: number;
  road?: number;
  pairs: number;
}

function summarise(records: EvalRecord[], methods: string[], classes: string[]): MethodSummary[] {
  return methods.map((method) => {
    const mine = records.filter((r) => r.method === method);
    const mean = (pick: (r: EvalRecord) => number | undefined) => {
      const values = mine.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v));
      return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
    };
    const pointingOver = (pairs: EvalRecord[]) => {
      if (!pairs.some((r) => r.pointing !== undefined)) return undefined;
      const score = new PointingGameScore(classes);
      for (const r of pairs) if (r.pointing !== undefined && classes.includes(r.class)) score.add(r.class, r.pointing);
      return score.mean();
    };
    const difficult = mine.filter((r) => r.difficult && r.pointing);
    return {
      method,
      pointing: pointingOver(mine),
      pointingDifficult: difficult.length ? pointingOver(difficult) : undefined,
      rhoPlus: mean((r) => r.rhoPlus),
      rhoMinus: mean((r) => r.rhoMinus),
      deletion: mean((r) => r.deletion),
      insertion: mean((r) => r.insertion),
      confidence: mean((r) => r.confidence),
      road: mean((r) => r.road),
      pairs: mine.length,
    };
  });
}

/** The mean of equally long curves, or undefined when they differ in length (images of several sizes). */
function meanCurve(curves: number[][]): number[] | undefined {
  const length = curves[0]?.length;
  if (!length || curves.some((c) => c.length !== length)) return undefined;
  return Array.from({ length }, (_, i) => curves.reduce((s, c) => s + (c[i] as number), 0) / curves.length);
}

function escapeHtml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** report.html (self-contained: the summary table and the mean insertion and deletion curves inline) and the curves as SVG. */
async function writeReport(
  folder: string,
  records: EvalRecord[],
  methods: string[],
  header: string[],
  rows: string[][],
  caption: string,
): Promise<boolean> {
  const panels = (['deletion', 'insertion'] as const).map((mode) => ({
    title: `${mode} (mean over images)`,
    points: methods.flatMap((method) => {
      const curve = meanCurve(
        records.filter((r) => r.method === method).flatMap((r) => (r[`${mode}Curve`] ? [r[`${mode}Curve`] as number[]] : [])),
      );
      return (curve ?? []).map((y, i) => ({ series: method, x: i / Math.max(1, curve?.length ? curve.length - 1 : 1), y }));
    }),
  }));
  const plotted = panels.some((p) => p.points.length > 0);
  const svg = plotted
    ? await renderSvg(curvesSpec(panels, { x: 'fraction of pixels changed', y: 'class probability', yDomain: [0, 1] }))
    : '';
  if (plotted) await writeFileAtomic(join(folder, 'insertion_deletion.svg'), new TextEncoder().encode(svg));
  const table = `<table><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</table>`;
  const html = `<!doctype html><html lang="en"><meta charset="utf-8"><title>cameras eval</title><style>body{font-family:DejaVu Sans,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}</style><h1>Saliency evaluation</h1><p>${escapeHtml(caption)}. Pointing: TorchRay's pointing game (mean of per-class accuracies); rho+ / rho-: the CAMERAS paper's densities (higher / lower is better); deletion / insertion: RISE's AUCs (lower / higher is better).</p>${table}${svg ? `<h2>Insertion and deletion</h2>${svg}` : ''}</html>\n`;
  await writeFileAtomic(join(folder, 'report.html'), new TextEncoder().encode(html));
  return plotted;
}
