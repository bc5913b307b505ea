import { mkdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { CamerasError, ExitCode } from '../errors.js';
import { writeFileAtomic } from '../io/files-node.js';
import { type BatchJob, type BatchOutcome, planBatch, runBatch } from '../jobs/batch.js';
import { batchInputs } from '../jobs/inputs.js';
import { enqueueAndWait, probeRedis, queueStatus, startWorker } from '../jobs/queue.js';
import { checkFolderWritable } from './explain.js';
import { onInterrupt, Progress } from './progress.js';
import { formatTable } from './table.js';

export interface BatchFlags {
  model: string;
  models?: string[];
  weights?: string;
  methods: string[];
  class?: string;
  target?: string;
  outDir: string;
  redis?: string;
  queue?: string;
  status?: boolean;
  json?: boolean;
  threads?: number;
  quiet?: boolean;
}

export interface WorkerFlags {
  redis: string;
  queue?: string;
  concurrency: number;
  lockMs?: number;
  threads?: number;
  quiet?: boolean;
}

/** `cameras batch`: plan the jobs, run them here (default) or through BullMQ workers (--redis), then sum up. */
export async function batchCommand(specs: string[], flags: BatchFlags): Promise<void> {
  if (flags.status) {
    if (!flags.redis) throw new CamerasError('--status reads the queue: give --redis redis://host:port');
    const { counts, failed } = await queueStatus(flags.redis, flags.queue);
    if (flags.json) process.stdout.write(`${JSON.stringify({ counts, failed })}\n`);
    else
      process.stdout.write(
        `${formatTable(Object.keys(counts), [Object.values(counts).map(String)])}\n${failed.map((f) => `failed ${f.id.slice(0, 12)}: ${f.reason}\n`).join('')}`,
      );
    return;
  }
  if (specs.length === 0) throw new CamerasError('give images, folders, globs or a manifest (.csv, .jsonl) to run');
  // What can refuse the whole batch is checked before anything is made: the out-dir, Redis, the models (planning).
  await checkFolderWritable(flags.outDir);
  if (flags.redis) await probeRedis(flags.redis);
  const jobs = await planBatch(await batchInputs(specs), {
    models: flags.models ?? [flags.model],
    methods: flags.methods,
    weights: flags.weights,
    class: flags.class,
    target: flags.target,
    outDir: flags.outDir,
  });
  // The folder exists before any job runs, so the summary can be written even when every job fails.
  await mkdir(flags.outDir, { recursive: true }).catch(() => undefined);
  const bar = new Progress('batch', flags.quiet, 'batch {bar} {value}/{total} jobs | ETA {eta_formatted} | {image}');
  bar.start(jobs.length, 0, { image: '' });
  const tick = (job: BatchJob) => bar.increment(`${basename(job.image)} (${job.method})`);
  const released = onInterrupt(() =>
    flags.redis
      ? `stopped waiting after ${bar.finished} of ${jobs.length} jobs; the queued ones go on on the workers: run the same command again to wait for them (finished ones are not run again)`
      : `stopped after ${bar.finished} of ${jobs.length} jobs; their files are whole in ${flags.outDir}: run the same command again to resume (finished jobs are skipped)`,
  );
  let outcome: BatchOutcome;
  try {
    outcome = flags.redis
      ? await enqueueAndWait(jobs, {
          redis: flags.redis,
          queue: flags.queue,
          onNotice: (line) => bar.note(line),
          onEvent: (event, job) => {
            if (event !== 'progress') tick(job);
          },
        })
      : await runBatch(jobs, { threads: flags.threads, onJob: (job) => tick(job) });
  } finally {
    bar.stop();
    released();
  }
  const records = [...outcome.done].sort((a, b) => a.image.localeCompare(b.image) || a.method.localeCompare(b.method));
  await writeFileAtomic(`${flags.outDir}/results.jsonl`, new TextEncoder().encode(records.map((r) => `${JSON.stringify(r)}\n`).join('')));
  if (flags.json) for (const r of records) process.stdout.write(`${JSON.stringify(r)}\n`);
  for (const f of outcome.failed) process.stderr.write(`failed: ${f.job.image} (${f.job.method}): ${f.reason}\n`);
  if (!flags.quiet && !flags.json)
    process.stdout.write(
      `${jobs.length} jobs: ${outcome.done.length - outcome.skipped} run, ${outcome.skipped} already done, ${outcome.failed.length} failed${
        flags.redis ? ` (through ${flags.redis})` : ''
      }\n${
        outcome.done.length > 0
          ? `wrote ${flags.outDir}/<image>.<method>.<key>.npy, .png, .json and results.jsonl`
          : `no job finished: ${flags.outDir}/results.jsonl is empty`
      }\n`,
    );
  // Failed jobs are bad input (corrupt images, unknown classes): the usage exit code, after the rest is done.
  if (outcome.failed.length > 0) process.exitCode = ExitCode.usage;
}

/** `cameras worker`: processes batch jobs from Redis until stopped (SIGINT/SIGTERM close it gracefully). */
export async function workerCommand(flags: WorkerFlags): Promise<void> {
  const worker = await startWorker({
    redis: flags.redis,
    queue: flags.queue,
    concurrency: flags.concurrency,
    lockMs: flags.lockMs,
    threads: flags.threads,
    onNotice: (line) => process.stderr.write(`${line}\n`),
  });
  if (!flags.quiet) {
    process.stderr.write(`worker ready on ${flags.redis} (concurrency ${flags.concurrency})\n`);
    worker.on('completed', (job) => process.stderr.write(`done ${basename(job.data.image)} ${job.data.method}\n`));
    worker.on('failed', (job, error) => process.stderr.write(`failed ${job ? basename(job.data.image) : '?'}: ${error.message}\n`));
    worker.on('stalled', (id) => process.stderr.write(`took over ${id.slice(0, 12)}: its worker stopped renewing the lock\n`));
  }
  await new Promise<void>((done) => {
    const stop = () => {
      void worker.close().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
