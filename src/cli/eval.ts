import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import * as ort from 'onnxruntime-node';
import { type DatasetItem, loadDataset } from '../datasets/load-node.js';
import { classesIn, classMask } from '../datasets/mask.js';
import { resizePlaneBilinear } from '../engine/resize.js';
import { DEFAULT_RESOLUTIONS } from '../engine/scales.js';
import { softmax } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import { Explainer } from '../explainer.js';
import { writeFileAtomic } from '../index.js';
import { readImage } from '../io/image-node.js';
import { preprocess, presetByName } from '../io/preprocess.js';
import { methodByName } from '../methods/registry.js';
import { densities, maskedInputs } from '../metrics/density.js';
import { causalMetric } from '../metrics/insertion-deletion.js';
import { PointingGameScore, pointingHit, pointOf } from '../metrics/pointing-game.js';
import { resolutionsFor } from '../models/zoo.js';
import { resolveModel } from '../models/zoo-node.js';
import { curvesSpec, renderSvg } from '../render/plots.js';
import { checkWritable, classIndex, type LoadedModel, labelsFor } from './explain.js';

export const METRICS = ['pointing', 'density', 'insdel'] as const;
type Metric = (typeof METRICS)[number];

export interface EvalFlags {
  model: string;
  weights?: string;
  layer?: string;
  methods: string[];
  metrics: string[];
  outDir: string;
  tolerance: number;
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
  rhoPlus?: number;
  rhoMinus?: number;
  deletion?: number;
  insertion?: number;
  /** The probability after each step (4 decimals), for the mean curves of the report. */
  deletionCurve?: number[];
  insertionCurve?: number[];
  seconds: number;
}

const key = (r: { image: string; class: string; method: string }) => `${r.image}\u0000${r.class}\u0000${r.method}`;

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
  const resolved = await resolveModel(flags.model, flags.weights);
  const preset = presetByName(resolved.entry?.preprocess ?? 'torchvision');
  const size = resolved.entry?.inputSize ?? preset.size;
  const explainer = await Explainer.create(ort, {
    model: resolved.bytes,
    layer: flags.layer ?? (resolved.entry?.layer || undefined),
    threads: flags.threads,
    source: resolved.source,
  });
  const model: LoadedModel = {
    spec: flags.model,
    entry: resolved.entry,
    ...(await labelsFor(resolved.entry, explainer, size)),
    explainer,
    preset,
    size,
    resolutions: resolved.entry ? resolutionsFor(size) : [...DEFAULT_RESOLUTIONS],
  };
  const resultsFile = join(flags.outDir, 'results.jsonl');
  const records = await previousRecords(resultsFile);
  const done = new Set(records.map(key));
  const jobs = items.flatMap((item) =>
    classesIn(item.annotation).flatMap((c) => flags.methods.map((method) => ({ item, className: c, method }))),
  );
  const bar =
    !flags.quiet && process.stderr.isTTY
      ? new SingleBar({
          format: 'evaluating {bar} {value}/{total} | ETA {eta_formatted} | {image}',
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
  bar?.start(jobs.length, jobs.filter((j) => done.has(key({ image: j.item.image, class: j.className, method: j.method }))).length, {
    image: '',
  });
  try {
    let current: { item: DatasetItem; tensor: ReturnType<typeof preprocess> } | undefined;
    for (const job of jobs) {
      const id = { image: job.item.image, class: job.className, method: job.method };
      if (done.has(key(id))) continue;
      bar?.update({ image: job.item.image });
      if (current?.item !== job.item) current = { item: job.item, tensor: preprocess(await readImage(job.item.image), preset, size) };
      const record = await scoreOne(model, current.tensor, job.item, job.className, job.method, metrics, flags.tolerance);
      await appendFile(resultsFile, `${JSON.stringify(record)}\n`);
      records.push(record);
      bar?.increment();
    }
  } finally {
    bar?.stop();
    await explainer.dispose();
  }
  const classes = [...new Set(items.flatMap((i) => classesIn(i.annotation)))].sort();
  const summary = summarise(records, flags.methods, classes);
  const header = ['method', 'pointing', 'rho+', 'rho-', 'deletion', 'insertion', 'pairs'];
  const rows = summary.map((s) => [
    s.method,
    fmt(s.pointing),
    fmt(s.rhoPlus),
    fmt(s.rhoMinus),
    fmt(s.deletion),
    fmt(s.insertion),
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
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ');
  process.stdout.write(
    `${items.length} images, ${classes.length} classes, model ${flags.model}\n${line(header)}\n${rows.map(line).join('\n')}\nwrote ${join(flags.outDir, 'summary.csv')}, summary.json, results.jsonl${plotted ? ', insertion_deletion.svg' : ''} and report.html\n`,
  );
}

function fmt(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(3);
}

async function previousRecords(file: string): Promise<EvalRecord[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  // A line cut short by a stop is dropped (and done again).
  return text
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as EvalRecord];
      } catch {
        return [];
      }
    });
}

async function scoreOne(
  model: LoadedModel,
  tensor: ReturnType<typeof preprocess>,
  item: DatasetItem,
  className: string,
  method: string,
  metrics: Set<Metric>,
  tolerance: number,
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
    record.pointing = mask ? pointingHit(mask, pointOf(result.map, result.height, result.width, height, width), tolerance) : 0;
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
  if (metrics.has('insdel')) {
    const round = (scores: number[]) => scores.map((v) => Math.round(v * 1e4) / 1e4);
    const deletion = await causalMetric(forward, tensor, map, 'deletion', { classIndex: cls });
    const insertion = await causalMetric(forward, tensor, map, 'insertion', { classIndex: cls });
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
  rhoPlus?: number;
  rhoMinus?: number;
  deletion?: number;
  insertion?: number;
  pairs: number;
}

function summarise(records: EvalRecord[], methods: string[], classes: string[]): MethodSummary[] {
  return methods.map((method) => {
    const mine = records.filter((r) => r.method === method);
    const mean = (pick: (r: EvalRecord) => number | undefined) => {
      const values = mine.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v));
      return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
    };
    let pointing: number | undefined;
    if (mine.some((r) => r.pointing !== undefined)) {
      const score = new PointingGameScore(classes);
      for (const r of mine) if (r.pointing !== undefined && classes.includes(r.class)) score.add(r.class, r.pointing);
      pointing = score.mean();
    }
    return {
      method,
      pointing,
      rhoPlus: mean((r) => r.rhoPlus),
      rhoMinus: mean((r) => r.rhoMinus),
      deletion: mean((r) => r.deletion),
      insertion: mean((r) => r.insertion),
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
