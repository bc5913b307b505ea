import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { isDetectionTarget, parseBoxTarget, scaleBox } from '../engine/detections.js';
import { parseTarget } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import type { Explainer } from '../explainer.js';
import { writeFileAtomic, writeNpyFile } from '../io/files-node.js';
import { readImage } from '../io/image-node.js';
import { methodByName } from '../methods/registry.js';
import type { PairScores } from '../metrics/metric.js';
import { classIndex, openExplainer, regionWithMask, targetOf } from '../models/open-node.js';
import { fileIdentity, sessionCacheOn } from '../models/session-cache-node.js';
import { cacheDir, modelFile, resolveModel } from '../models/zoo-node.js';
import { OnnxGraph } from '../onnx/graph.js';
import { overlayWithBar } from '../render/panel-node.js';
import { checkAnnotatedSize, type EvalSpec, scorePair } from './evaluate.js';
import type { BatchInput } from './inputs.js';

/**
 * One unit of a batch: an image explained by one method of one model for one class and target. Its key hashes
 * everything the result depends on (the image's and the model's bytes, method, class, target), and its outputs
 * are named by it, so a rerun finds finished work and a retried job rewrites the same result, never another.
 */
export interface BatchJob {
  key: string;
  image: string;
  imageHash: string;
  model: string;
  modelHash: string;
  weights?: string;
  /** Target layer; undefined: the model's default. */
  layer?: string;
  method: string;
  /** A class index or label; undefined: the top-1 class. */
  class?: string;
  /** logit (default), prob, logprob or contrast:<class>. */
  target?: string;
  outDir: string;
  /** The outputs' common path: `<outDir>/<image name>.<method>.<key, 12 hex>`. */
  stem: string;
  /** An evaluation job (`cameras eval`): the map is also scored for its annotated pair. */
  evaluate?: EvalSpec;
}

/** What a finished job records (its `.json` file, one line; written last, it marks the job done). */
export interface BatchRecord {
  key: string;
  image: string;
  model: string;
  method: string;
  target: string;
  /** The class explained, where the model's output has classes (absent for a function target). */
  classIndex?: number;
  className?: string;
  /** Its softmax probability, where the output is a classifier's. */
  probability?: number;
  empty: boolean;
  map: string;
  overlay: string;
  /** An evaluation job's scores. */
  scores?: PairScores;
  seconds: number;
}

export interface BatchPlanOptions {
  models: string[];
  methods: string[];
  weights?: string;
  /** A class for every image (a manifest's own class wins). */
  class?: string;
  target?: string;
  outDir: string;
}

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Model files and weights by absolute path: a worker started in another folder must find them too. */
export function absoluteModel(spec: string): string {
  return existsSync(spec) ? resolve(spec) : spec;
}

/**
 * A model's content hash, for job keys: the same model under another path or name keys the same jobs. A model
 * file's hash is kept in the cache by the file's identity, so a rerun does not read a large model to plan.
 */
export async function modelHash(model: string, weights?: string): Promise<string> {
  const file = weights ? undefined : await modelFile(model);
  const identity = file ? await fileIdentity(file) : undefined;
  const kept = identity && sessionCacheOn() ? join(cacheDir(), 'hashes', sha256(identity)) : undefined;
  const known = kept ? await readFile(kept, 'utf8').catch(() => '') : '';
  if (/^[0-9a-f]{64}$/.test(known)) return known;
  const { bytes, source } = await resolveModel(model, weights);
  // A model that does not parse is refused here, once, before any job is queued (not once per job).
  OnnxGraph.fromBytes(bytes, source);
  const hash = sha256(bytes);
  if (kept)
    await mkdir(dirname(kept), { recursive: true })
      .then(() => writeFileAtomic(kept, new TextEncoder().encode(hash)))
      .catch(() => undefined);
  return hash;
}

/** An image file's content hash; an unreadable file fails in one line. */
export async function imageHash(image: string): Promise<string> {
  const bytes = await readFile(image).catch((error: NodeJS.ErrnoException) => {
    throw new CamerasError(`cannot read image ${image}: ${error.code ?? error.message}; check the path`);
  });
  return sha256(bytes);
}

/** A region mask's content hash (a missing mask fails at planning, in one line). */
async function maskHash(path: string): Promise<string> {
  const bytes = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new CamerasError(`cannot read mask ${path}: ${error.code ?? error.message}; check the path`);
  });
  return sha256(bytes);
}

/** The job's outputs' common path: named for people (image, method), unique by the key. */
export function stemOf(outDir: string, image: string, method: string, key: string): string {
  return join(outDir, `${basename(image, extname(image))}.${method}.${key.slice(0, 12)}`);
}

/** The key of a job: a hash of everything its result depends on. */
export function jobKey(parts: Record<string, unknown>): string {
  return sha256(JSON.stringify(parts));
}

export function outputsOf(job: BatchJob): { map: string; overlay: string; record: string } {
  return { map: `${job.stem}.npy`, overlay: `${job.stem}.png`, record: `${job.stem}.json` };
}

/** The jobs of a batch: every input by every model and method, keyed by content. */
export async function planBatch(inputs: BatchInput[], options: BatchPlanOptions): Promise<BatchJob[]> {
  for (const method of options.methods) methodByName(method);
  // Checked before any job is queued: a box's label is a name or an index, read against each model when it runs.
  if (options.target !== undefined && !parseBoxTarget(options.target, () => 0)) parseTarget(options.target, () => 0);
  // A region's mask is taken by absolute path (workers elsewhere read it) and keyed by its content.
  const region = options.target === undefined ? undefined : regionWithMask(options.target);
  const target = region ? `segment:${region.segment}:${resolve(region.mask)}` : options.target;
  const targetKey = region ? `segment:${region.segment}:${await maskHash(resolve(region.mask))}` : (options.target ?? 'logit');
  const outDir = resolve(options.outDir);
  options = { ...options, models: options.models.map(absoluteModel), ...(options.weights ? { weights: resolve(options.weights) } : {}) };
  const modelHashes = new Map<string, string>();
  for (const model of options.models) modelHashes.set(model, await modelHash(model, options.weights));
  const jobs: BatchJob[] = [];
  for (const input of inputs) {
    const imageKey = await imageHash(input.image);
    for (const model of options.models)
      for (const method of options.methods) {
        const cls = input.class ?? options.class;
        const hash = modelHashes.get(model) as string;
        const key = jobKey({ imageHash: imageKey, modelHash: hash, method, class: cls ?? null, target: targetKey });
        jobs.push({
          key,
          image: input.image,
          imageHash: imageKey,
          model,
          modelHash: hash,
          ...(options.weights ? { weights: options.weights } : {}),
          method,
          ...(cls !== undefined ? { class: cls } : {}),
          ...(target !== undefined ? { target } : {}),
          outDir,
          stem: stemOf(outDir, input.image, method, key),
        });
      }
  }
  // An image listed twice is one job: the same outputs.
  return [...new Map(jobs.map((job) => [job.stem, job])).values()];
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** The job's record when its outputs are all there (a finished job), else undefined. */
export async function finishedRecord(job: BatchJob): Promise<BatchRecord | undefined> {
  const out = outputsOf(job);
  if (!(await exists(out.record)) || !(await exists(out.map)) || !(await exists(out.overlay))) return undefined;
  try {
    const record = JSON.parse(await readFile(out.record, 'utf8')) as BatchRecord;
    // An evaluation job's record without scores was written by a worker that does not evaluate: not done.
    return job.evaluate && !record.scores ? undefined : record;
  } catch {
    return undefined;
  }
}

/** A job that failed for a reason that may pass (writing its files: a full disk, a shared folder away): retried. */
export class TransientJobError extends Error {}

/** Runs jobs in one process, loading each model once (a worker holds one of these). */
export class JobRunner {
  private readonly models = new Map<string, Promise<Explainer>>();

  constructor(private readonly threads?: number) {}

  private static modelKey(job: Pick<BatchJob, 'model' | 'weights' | 'layer'>): string {
    return `${job.model}\u0000${job.weights ?? ''}\u0000${job.layer ?? ''}`;
  }

  /** A model this process has loaded already, for the jobs that name it (`cameras eval` loads it to check labels). */
  adopt(job: Pick<BatchJob, 'model' | 'weights' | 'layer'>, model: Explainer): void {
    this.models.set(JobRunner.modelKey(job), Promise.resolve(model));
  }

  /** Runs one job, or returns its record when its outputs exist; outputs are written whole, the record last. */
  async run(job: BatchJob): Promise<{ record: BatchRecord; skipped: boolean }> {
    const done = await finishedRecord(job);
    if (done) return { record: done, skipped: true };
    const started = performance.now();
    const key = JobRunner.modelKey(job);
    let loading = this.models.get(key);
    if (!loading) {
      loading = openExplainer(job.model, { weights: job.weights, layer: job.layer, threads: this.threads });
      this.models.set(key, loading);
      loading.catch(() => this.models.delete(key));
    }
    const explainer = await loading;
    const picture = await readImage(job.image);
    if (job.evaluate) checkAnnotatedSize(job.image, picture, job.evaluate.annotation);
    const tensor = explainer.preprocess(picture);
    const { profile } = explainer;
    const target = job.target !== undefined ? await targetOf(job.target, explainer, { tensor, image: picture }) : undefined;
    const result = await explainer.explain(tensor, {
      method: job.method,
      classIndex: job.class === undefined ? null : classIndex(job.class, profile),
      ...(target !== undefined ? { target } : {}),
    });
    const scores = job.evaluate ? await scorePair(explainer, tensor, result, job.evaluate) : undefined;
    const out = outputsOf(job);
    const write = async (what: () => Promise<void>) => {
      try {
        await what();
      } catch (error) {
        throw new TransientJobError((error as Error).message);
      }
    };
    await write(async () => {
      await mkdir(job.outDir, { recursive: true });
    });
    await write(() => writeNpyFile(out.map, { data: result.map, shape: [result.height, result.width] }));
    // A detector's explained box is drawn over its map, in the picture's pixels.
    const detection = isDetectionTarget(target) ? target.detection : undefined;
    const boxes = detection
      ? [
          {
            box: scaleBox(detection.box, picture.width / detection.size.width, picture.height / detection.size.height),
            label: profile.labels?.[detection.label] ?? `class ${detection.label}`,
          },
        ]
      : undefined;
    const overlay = await overlayWithBar(result, picture, { boxes });
    await write(() => writeFileAtomic(out.overlay, overlay));
    const record: BatchRecord = {
      key: job.key,
      image: job.image,
      model: job.model,
      method: job.method,
      target: result.target,
      ...(result.classIndex !== undefined ? { classIndex: result.classIndex } : {}),
      ...(result.classIndex !== undefined && profile.labels?.[result.classIndex] ? { className: profile.labels[result.classIndex] } : {}),
      ...(result.classProbability !== undefined ? { probability: result.classProbability } : {}),
      empty: result.empty,
      map: basename(out.map),
      overlay: basename(out.overlay),
      ...(scores ? { scores } : {}),
      seconds: Math.round(performance.now() - started) / 1000,
    };
    await write(() => writeFileAtomic(out.record, new TextEncoder().encode(`${JSON.stringify(record)}\n`)));
    return { record, skipped: false };
  }

  async dispose(): Promise<void> {
    for (const loading of this.models.values()) await (await loading.catch(() => undefined))?.dispose();
    this.models.clear();
  }
}

export interface BatchOutcome {
  done: BatchRecord[];
  skipped: number;
  failed: { job: BatchJob; reason: string }[];
}

/** The embedded default: every job in this process, one after another, a failing job recorded and passed over. */
export async function runBatch(
  jobs: BatchJob[],
  options: {
    threads?: number;
    /** Runs the jobs (its loaded models with them), else a new one. */
    runner?: JobRunner;
    onJob?: (job: BatchJob, index: number, outcome: 'done' | 'skipped' | 'failed', record?: BatchRecord) => void;
  } = {},
): Promise<BatchOutcome> {
  const runner = options.runner ?? new JobRunner(options.threads);
  const outcome: BatchOutcome = { done: [], skipped: 0, failed: [] };
  try {
    for (const [index, job] of jobs.entries()) {
      try {
        const { record, skipped } = await runner.run(job);
        outcome.done.push(record);
        if (skipped) outcome.skipped++;
        options.onJob?.(job, index, skipped ? 'skipped' : 'done', record);
      } catch (error) {
        if (!(error instanceof CamerasError) && !(error instanceof TransientJobError)) throw error;
        outcome.failed.push({ job, reason: error.message });
        options.onJob?.(job, index, 'failed');
      }
    }
  } finally {
    // A runner given is the caller's to dispose.
    if (!options.runner) await runner.dispose();
  }
  return outcome;
}
