import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { loadDataset } from '../datasets/load-node.js';
import { classesIn } from '../datasets/mask.js';
import { CamerasError, ExitCode } from '../errors.js';
import { writeFileAtomic } from '../io/files-node.js';
import { absoluteModel, type BatchJob, type BatchOutcome, type BatchRecord, JobRunner, runBatch } from '../jobs/batch.js';
import { type EvalPair, planEval } from '../jobs/eval-jobs.js';
import { enqueueAndWait, probeRedis } from '../jobs/queue.js';
import { methodByName } from '../methods/registry.js';
import type { EvalMetric, ScoredRecord } from '../metrics/metric.js';
import { DEFAULT_METRICS, EVAL_METRICS, METRICS, metricByName } from '../metrics/names.js';
import { classIndex, openExplainer } from '../models/open-node.js';
import { curvesSpec, renderSvg } from '../render/plots.js';
import { checkFolderWritable, checkWritable } from './explain.js';
import { onInterrupt, Progress } from './progress.js';
import { formatTable } from './table.js';

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
  /** Run the pairs as BullMQ jobs on `cameras worker`s through this Redis, rather than here. */
  redis?: string;
  queue?: string;
}

/** One line of results.jsonl: one image, class and method, with its scores. */
interface EvalRecord extends ScoredRecord {
  image: string;
  method: string;
  seconds: number;
}

const key = (r: { image: string; class: string; method: string; box?: unknown }) =>
  `${r.image}\u0000${r.class}\u0000${r.method}${r.box === undefined ? '' : `\u0000${r.box}`}`;

/** What scores a detector's box or a segmenter's region: the metrics that read the map on the ground truth. */
const REGION_METRICS = ['pointing', 'energy'];

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
    if (!metricByName(metric)) throw new CamerasError(`unknown metric '${metric}'; choose from: ${METRICS.join(', ')}`);
  const items = (await loadDataset(dataset)).slice(0, flags.limit);
  // Everything that can refuse the run is checked before the out-dir is made: a refused run leaves nothing.
  await checkFolderWritable(flags.outDir);
  if (flags.redis) await probeRedis(flags.redis);
  const explainer = await openExplainer(flags.model, { weights: flags.weights, layer: flags.layer, threads: flags.threads });
  // A detector is scored per annotated box (the box, with its class as the label, is the target); a segmenter per
  // annotated class (its region, the pixels predicted as it, is the target). Both by what reads the map on the ground
  // truth, not by a classifier's class probability.
  const detector = (await explainer.detector()) !== undefined;
  const segmenter = !detector && explainer.profile.outputs.find((o) => o.name === explainer.profile.output)?.shape?.length === 4;
  if (detector || segmenter) {
    const asked = flags.metrics.join(',') === DEFAULT_METRICS.join(',') ? REGION_METRICS : flags.metrics;
    const refused = asked.filter((m) => !REGION_METRICS.includes(m));
    if (refused.length > 0) {
      await explainer.dispose();
      throw new CamerasError(
        `--metrics ${refused.join(',')} score a classifier's class; a ${detector ? "detector's boxes are" : "segmenter's regions are"} scored by ${REGION_METRICS.join(' and ')}`,
      );
    }
    flags = { ...flags, metrics: asked };
  }
  const size = explainer.profile.inputSize;
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
        classIndex(c, explainer.profile);
      } catch {
        await explainer.dispose();
        throw new CamerasError(
          `class '${c}' of ${item.image} is not one of the model's labels; give a model whose labels name the data set's classes`,
        );
      }
    }
  await mkdir(flags.outDir, { recursive: true }).catch(() => undefined);
  await checkWritable(resultsFile);
  const previous = await previousRecords(resultsFile, settings);
  // Images are named relative to the data set, so a rerun from elsewhere resumes the same records.
  const relativeName = (image: string) => relativePath(dataset, image);
  const pairs: EvalPair[] = detector
    ? items.flatMap((item) =>
        item.annotation.objects.flatMap((object, box) => {
          const { xmin, ymin, xmax, ymax } = object.box;
          // The box in pixel edges (the annotation's are inclusive pixels), its class as the label.
          const target = `box:${xmin},${ymin},${xmax + 1},${ymax + 1}:${classIndex(object.className, explainer.profile)}`;
          const annotation = { ...item.annotation, objects: [object] };
          return flags.methods.map((method) => ({ image: item.image, annotation, className: object.className, method, box, target }));
        }),
      )
    : items.flatMap((item) =>
        classesIn(item.annotation).flatMap((className) =>
          flags.methods.map((method) => ({
            image: item.image,
            annotation: item.annotation,
            className,
            method,
            ...(segmenter ? { target: `segment:${classIndex(className, explainer.profile)}` } : {}),
          })),
        ),
      );
  const pairKey = (p: EvalPair) => key({ image: relativeName(p.image), class: p.className, method: p.method, box: p.box });
  const wanted = new Set(pairs.map(pairKey));
  // The latest record of each of this run's pairs (a pair recorded twice counts once).
  const byKey = new Map(previous.filter((r) => wanted.has(key(r))).map((r) => [key(r), r]));
  if (previous.length === 0 && !(await readFile(resultsFile, 'utf8').catch(() => '')))
    await writeFileAtomic(resultsFile, new TextEncoder().encode(`${JSON.stringify(settings)}\n`));
  else await ensureNewline(resultsFile);
  // The pairs not yet recorded, as batch jobs: run here, or on BullMQ workers with --redis; maps land in maps/.
  const pending = pairs.filter((p) => !byKey.has(pairKey(p)));
  const jobs = await planEval(pending, {
    model: flags.model,
    weights: flags.weights,
    layer: flags.layer,
    metrics: flags.metrics,
    tolerance: flags.tolerance,
    annotatedClass: !!flags.annotatedClass,
    outDir: join(flags.outDir, 'maps'),
  });
  const bar = new Progress('eval', flags.quiet, 'evaluating {bar} {value}/{total} | ETA {eta_formatted} | {image}');
  bar.start(pairs.length, pairs.length - pending.length, { image: '' });
  const released = onInterrupt(
    () =>
      `stopped after ${bar.finished} of ${pairs.length} pairs; the scored ones are kept in ${resultsFile}: run the same command again to resume${
        flags.redis ? ' (the queued pairs go on on the workers)' : ''
      }`,
  );
  // Records are appended as jobs finish, so a stopped run keeps them (and the jobs' own files make a rerun quick).
  let appending = Promise.resolve();
  let appendError: Error | undefined;
  const finished = (job: BatchJob, record: BatchRecord | undefined) => {
    if (!record?.scores || !job.evaluate) return;
    const line: EvalRecord = {
      image: relativeName(job.image),
      class: job.evaluate.className,
      ...(job.evaluate.box !== undefined ? { box: job.evaluate.box } : {}),
      method: job.method,
      ...record.scores,
      seconds: record.seconds,
    };
    byKey.set(key(line), line);
    // One append at a time, in order; a failure (a full disk) is kept and reported once the jobs have stopped.
    appending = appending
      .then(() => appendFile(resultsFile, `${JSON.stringify(line)}\n`))
      .catch((error: Error) => {
        appendError ??= error;
      });
    bar.increment(`${line.image} (${line.method})`);
  };
  let outcome: BatchOutcome;
  const runner = new JobRunner(flags.threads);
  try {
    runner.adopt(jobs[0] ?? { model: absoluteModel(flags.model) }, explainer);
    outcome = flags.redis
      ? await enqueueAndWait(jobs, {
          redis: flags.redis,
          queue: flags.queue,
          onNotice: (line) => bar.note(line),
          onEvent: (event, job, record) => {
            if (event === 'done' || event === 'skipped') finished(job, record);
          },
        })
      : await runBatch(jobs, { runner, onJob: (job, _index, _outcome, record) => finished(job, record) });
  } finally {
    bar.stop();
    released();
    await runner.dispose(); // and with it the model it adopted
  }
  await appending;
  if (appendError)
    throw new CamerasError(
      `cannot write ${resultsFile}: ${(appendError as NodeJS.ErrnoException).code ?? appendError.message}; free space or fix its folder, then run again to resume`,
    );
  for (const f of outcome.failed) process.stderr.write(`failed: ${f.job.image} (${f.job.method}): ${f.reason}\n`);
  // Failed pairs are bad input (an image unlike its annotation, a corrupt file): the usage exit code, after the rest.
  if (outcome.failed.length > 0) process.exitCode = ExitCode.usage;
  const classes = [...new Set(items.flatMap((i) => classesIn(i.annotation)))].sort();
  const records = [...byKey.values()];
  // The summary's columns: those of the metrics asked for, in the registry's order.
  const metrics = EVAL_METRICS.filter((m) => flags.metrics.includes(m.name));
  const summary = summarise(records, flags.methods, classes, metrics);
  const columns = metrics.flatMap((m) => m.columns);
  const header = ['method', ...columns.map((c) => c.header), 'pairs'];
  const rows = summary.map((s) => [s.method as string, ...columns.map((c) => fmt(s[c.key] as number | undefined)), String(s.pairs)]);
  await writeFileAtomic(
    join(flags.outDir, 'summary.csv'),
    new TextEncoder().encode(`${[header, ...rows].map((r) => r.join(',')).join('\n')}\n`),
  );
  await writeFileAtomic(join(flags.outDir, 'summary.json'), new TextEncoder().encode(`${JSON.stringify(summary, null, 1)}\n`));
  const plotted = await writeReport(
    flags.outDir,
    records,
    flags.methods,
    metrics,
    header,
    rows,
    `${items.length} images, ${detector ? `${pairs.length / flags.methods.length} boxes, ` : ''}${classes.length} classes, model ${flags.model}`,
  );
  if (flags.quiet) return;
  process.stdout.write(
    `${items.length} images, ${detector ? `${pairs.length / flags.methods.length} boxes, ` : ''}${classes.length} classes, model ${flags.model}\n${formatTable(header, rows)}\nwrote ${join(flags.outDir, 'summary.csv')}, summary.json, results.jsonl${plotted ? ', insertion_deletion.svg' : ''} and report.html\n`,
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

/** One method's summary: a value per column of the metrics asked for (summary.json), and its pair count. */
type MethodSummary = { method: string; pairs: number } & Record<string, number | string | undefined>;

function summarise(records: EvalRecord[], methods: string[], classes: string[], metrics: readonly EvalMetric[]): MethodSummary[] {
  return methods.map((method) => {
    const mine = records.filter((r) => r.method === method);
    const values = metrics.flatMap((m) => m.columns.map((c) => [c.key, c.summarise(mine, classes)] as const));
    return { method, ...Object.fromEntries(values), pairs: mine.length };
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
  metrics: readonly EvalMetric[],
  header: string[],
  rows: string[][],
  caption: string,
): Promise<boolean> {
  const panels = metrics
    .flatMap((m) => m.curves ?? [])
    .map(({ key: curveKey, title }) => ({
      title: `${title} (mean over images)`,
      points: methods.flatMap((method) => {
        const curve = meanCurve(
          records.filter((r) => r.method === method).flatMap((r) => (Array.isArray(r[curveKey]) ? [r[curveKey]] : [])),
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
  const captions = metrics.map((m) => m.caption).join('; ');
  const html = `<!doctype html><html lang="en"><meta charset="utf-8"><title>cameras eval</title><style>body{font-family:DejaVu Sans,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}</style><h1>Saliency evaluation</h1><p>${escapeHtml(caption)}. ${escapeHtml(captions)}.</p>${table}${svg ? `<h2>Insertion and deletion</h2>${svg}` : ''}</html>\n`;
  await writeFileAtomic(join(folder, 'report.html'), new TextEncoder().encode(html));
  return plotted;
}
