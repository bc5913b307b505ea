import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Job, Queue, QueueEvents, Worker } from 'bullmq';
import { CamerasError } from '../errors.js';
import { type BatchJob, type BatchOutcome, type BatchRecord, finishedRecord, outputsOf } from './batch.js';

/**
 * A job's id on the queue: its outputs' path (out-dir, image name, method, key), so the same work for another
 * folder or under another name is its own job, and resending the same job joins it.
 */
function queueId(job: BatchJob): string {
  return createHash('sha256').update(job.stem).digest('hex');
}

/** The queue's name unless told otherwise. */
export const DEFAULT_QUEUE = 'cameras';

export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
}

/** `redis://[user:password@]host[:port][/db]` as ioredis options (BullMQ needs `maxRetriesPerRequest: null`). */
export function parseRedisUrl(url: string): RedisTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CamerasError(`'${url}' is not a Redis URL; give redis://host:port`);
  }
  if (parsed.protocol !== 'redis:') throw new CamerasError(`'${url}' is not a Redis URL; give redis://host:port`);
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : undefined;
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
  };
}

/**
 * Fails in one line when nothing answers a Redis PING at `url` within 5 s, before any BullMQ client exists: a client
 * made for an address where nothing listens retries forever, and neither its `close` nor its `disconnect` returns.
 */
export async function probeRedis(url: string): Promise<void> {
  const target = parseRedisUrl(url);
  const answer = await new Promise<string>((done) => {
    const socket = createConnection({ host: target.host, port: target.port });
    const finish = (what: string) => {
      socket.destroy();
      done(what);
    };
    socket.setTimeout(5000, () => finish('no answer in 5 s'));
    socket.on('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    socket.on('connect', () => socket.write('PING\r\n'));
    // +PONG, or -NOAUTH where a password is needed (the client gives it): either way a Redis is there.
    socket.on('data', (data) => finish(/^[+-]/.test(data.toString()) ? '' : 'not a Redis server'));
  });
  if (answer) throw new CamerasError(`cannot reach Redis at ${url} (${answer}); start redis-server or fix --redis`);
}

/** Waits for a BullMQ client's connection, failing in one line when Redis does not answer within 5 s. */
async function ready(client: { waitUntilReady(): Promise<unknown> }, url: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer in 5 s')), 5000);
  });
  try {
    await Promise.race([client.waitUntilReady(), timeout]);
  } catch (error) {
    throw new CamerasError(`cannot reach Redis at ${url} (${(error as Error).message}); start redis-server or fix --redis`);
  } finally {
    clearTimeout(timer);
  }
}

function connection(url: string) {
  return { ...parseRedisUrl(url), maxRetriesPerRequest: null };
}

/** A connection error (Redis away) rather than one of a command: ioredis reconnects by itself. */
function isConnectionError(error: Error & { code?: string }): boolean {
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection is closed/.test(`${error.code ?? ''} ${error.message}`);
}

/**
 * One line when a BullMQ client loses Redis and one when Redis is back, other errors as their first line: a client
 * with no 'error' listener prints every retry's stack trace. `lost` turns a job that vanished (Redis restarted without
 * its data) into a sentence.
 */
function watchConnection(
  client: Queue | QueueEvents | Worker,
  url: string,
  say: (line: string) => void,
  lost: (jobId: string) => string,
): void {
  const emitter = client as unknown as NodeJS.EventEmitter;
  let away = false;
  const gone = (why: string) => {
    if (away) return;
    away = true;
    say(`lost Redis at ${url} (${why}); waiting for it to come back`);
  };
  // A lost job fails each step after (lock renewal, moveToFinished, moveToDelayed): said once.
  const told = new Set<string>();
  emitter.on('error', (error: Error & { code?: string }) => {
    if (isConnectionError(error)) return gone(error.code ?? error.message);
    const missing = /^(?:Missing key for job|could not renew lock for job) ([^\s.]+)/.exec(error.message)?.[1];
    if (missing && told.has(missing)) return;
    if (missing) told.add(missing);
    say(missing ? lost(missing) : (error.message.split('\n')[0] ?? String(error)));
  });
  emitter.on('ioredis:close', () => gone('connection closed'));
  void client.client.then((redis) =>
    (redis as unknown as NodeJS.EventEmitter).on('ready', () => {
      if (!away) return;
      away = false;
      say(`Redis at ${url} is back`);
    }),
  );
}

/** The id of the Redis server process: a restart changes it (and, without an append-only file, empties the queue). */
async function serverRunId(queue: Queue): Promise<string> {
  const redis = (await queue.client) as unknown as { info(section: string): Promise<string> };
  const info = await redis.info('server');
  return /run_id:(\w+)/.exec(info)?.[1] ?? '';
}

export interface QueueOptions {
  redis: string;
  queue?: string;
  /** Tries per job before it lands in the failed list (default 3), with exponential backoff from `backoffMs`. */
  attempts?: number;
  backoffMs?: number;
  onEvent?: (event: 'done' | 'skipped' | 'failed' | 'progress', job: BatchJob, record?: BatchRecord) => void;
  /** Lines about the queue itself: Redis lost and back, jobs queued again after Redis lost them. */
  onNotice?: (line: string) => void;
}

/**
 * Puts the jobs on a BullMQ queue (job id = the job's key, so a job is queued once however often it is sent) and
 * waits until each is finished or has failed its last try. Jobs whose outputs exist are not queued.
 */
export async function enqueueAndWait(jobs: BatchJob[], options: QueueOptions): Promise<BatchOutcome> {
  await probeRedis(options.redis);
  const name = options.queue ?? DEFAULT_QUEUE;
  const queue = new Queue(name, { connection: connection(options.redis) });
  const events = new QueueEvents(name, { connection: connection(options.redis) });
  const outcome: BatchOutcome = { done: [], skipped: 0, failed: [] };
  const say = options.onNotice ?? (() => undefined);
  const lost = (id: string) => `job ${id.slice(0, 12)} is gone from Redis; it is queued again if its files are not written`;
  watchConnection(queue, options.redis, say, lost);
  watchConnection(events, options.redis, () => undefined, lost);
  try {
    await ready(queue, options.redis);
    await ready(events, options.redis);
    const pending = new Map<string, BatchJob>();
    for (const job of jobs) {
      const record = await finishedRecord(job);
      if (record) {
        outcome.done.push(record);
        outcome.skipped++;
        options.onEvent?.('skipped', job, record);
      } else pending.set(queueId(job), job);
    }
    let wake: () => void = () => undefined;
    // The Redis process each job was queued on, and the jobs found lost since (queued again after each look).
    const queuedOn = new Map<string, string>();
    const requeue = new Set<string>();
    const settle = async (key: string) => {
      const job = pending.get(key);
      if (!job) return;
      const record = await finishedRecord(job);
      // An event and the periodic look can settle the same job at once: the first one counts it.
      if (!pending.has(key)) return;
      if (record) {
        pending.delete(key);
        outcome.done.push(record);
        options.onEvent?.('done', job, record);
        wake();
        return;
      }
      const queued = await Job.fromId(queue, key);
      if (!queued && pending.has(key) && !(await finishedRecord(job)) && (await serverRunId(queue)) !== queuedOn.get(key)) {
        // Redis restarted since the job was queued and lost it with its memory (no append-only file): queue it again.
        requeue.add(key);
        return;
      }
      if (!queued && pending.has(key) && !(await finishedRecord(job))) {
        // Done and removed, yet its files are not where this machine looks: the out-dir is not shared.
        pending.delete(key);
        const unscored = job.evaluate && existsSync(outputsOf(job).record);
        outcome.failed.push({
          job,
          reason: unscored
            ? 'a worker finished it without scoring it (an older cameras on that machine?); update cameras on the workers'
            : `a worker finished it, but ${outputsOf(job).record} is not here; give the workers the same folder`,
        });
        options.onEvent?.('failed', job);
        wake();
        return;
      }
      if (queued && (await queued.getState()) === 'failed' && pending.has(key)) {
        pending.delete(key);
        outcome.failed.push({ job, reason: queued.failedReason.split('\n')[0] ?? 'failed' });
        options.onEvent?.('failed', job);
        wake();
      }
    };
    events.on('completed', ({ jobId }) => void settle(jobId));
    events.on('failed', ({ jobId }) => void settle(jobId));
    events.on('progress', ({ jobId }) => {
      const job = pending.get(jobId);
      if (job) options.onEvent?.('progress', job);
    });
    // A job failed on an earlier run is queued afresh; one waiting or active (another batch sent it) is joined.
    for (const key of pending.keys()) {
      const old = await Job.fromId(queue, key);
      if (old && ['failed', 'completed'].includes(await old.getState())) await old.remove();
    }
    const send = async (keys: string[]) => {
      const runId = await serverRunId(queue);
      for (const key of keys) queuedOn.set(key, runId);
      await queue.addBulk(
        keys.map((key) => {
          const job = pending.get(key) as BatchJob;
          return {
            name: 'explain',
            data: job,
            opts: {
              jobId: queueId(job),
              attempts: options.attempts ?? 3,
              backoff: { type: 'exponential', delay: options.backoffMs ?? 1000 },
              removeOnComplete: true,
              removeOnFail: false,
            },
          };
        }),
      );
    };
    await send([...pending.keys()]);
    // Events can be missed across a Redis restart: look at every pending job now and then as well.
    while (pending.size > 0) {
      await new Promise<void>((done) => {
        wake = done;
        setTimeout(done, 2000);
      });
      for (const key of [...pending.keys()]) await settle(key);
      const lostKeys = [...requeue].filter((key) => pending.has(key));
      requeue.clear();
      if (lostKeys.length > 0) {
        say(
          `Redis at ${options.redis} restarted without its data and lost ${lostKeys.length} queued job${lostKeys.length > 1 ? 's' : ''}: queued again (run redis-server with --appendonly yes to keep the queue across restarts)`,
        );
        await send(lostKeys);
      }
    }
  } finally {
    await events.close();
    await queue.close();
  }
  return outcome;
}

export interface WorkerOptions {
  redis: string;
  queue?: string;
  /** Jobs run at once, each in its own child process (default 1). */
  concurrency?: number;
  /** How long a job's lock lasts without renewal before another worker takes the job over (default 30 s). */
  lockMs?: number;
  threads?: number;
  /** Lines about the queue itself: Redis lost and back, a job Redis lost while it ran. */
  onNotice?: (line: string) => void;
}

/**
 * A BullMQ worker whose jobs run in sandboxed child processes (ONNX Runtime's work is synchronous; in a child it
 * cannot stall the lock renewal of the worker process). Each child keeps its models loaded between jobs.
 */
export async function startWorker(options: WorkerOptions): Promise<Worker<BatchJob, BatchRecord>> {
  const processor = fileURLToPath(new URL('./processor.js', import.meta.url));
  await probeRedis(options.redis);
  const lockDuration = options.lockMs ?? 30_000;
  if (options.threads) process.env.CAMERAS_JOB_THREADS = String(options.threads);
  const worker = new Worker<BatchJob, BatchRecord>(options.queue ?? DEFAULT_QUEUE, processor, {
    connection: connection(options.redis),
    concurrency: options.concurrency ?? 1,
    lockDuration,
    stalledInterval: lockDuration,
    maxStalledCount: 3,
  });
  watchConnection(
    worker,
    options.redis,
    options.onNotice ?? (() => undefined),
    (id) =>
      `job ${id.slice(0, 12)} is gone from Redis (restarted without its data?); the batch queues it again unless its files are written`,
  );
  await ready(worker, options.redis);
  return worker;
}

/** The queue's counts (waiting, active, delayed, completed, failed) and its most recent failures with their reasons. */
export async function queueStatus(
  redis: string,
  name = DEFAULT_QUEUE,
): Promise<{ counts: Record<string, number>; failed: { id: string; reason: string }[] }> {
  await probeRedis(redis);
  const queue = new Queue(name, { connection: connection(redis) });
  try {
    await ready(queue, redis);
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
    const failed = (await queue.getFailed(0, 19)).map((job) => ({
      id: String(job.id),
      reason: `${(job.data as BatchJob).image}: ${job.failedReason.split('\n')[0]}`,
    }));
    return { counts, failed };
  } finally {
    await queue.close();
  }
}
