/**
 * The job engine's cost: per-job time of `cameras batch` embedded and through BullMQ/Redis (1 worker, then 2
 * worker processes), as the slope between a 4-job and a 20-job batch so start-up and model loading cancel.
 * Prints one JSON line. Needs redis-server (Debian's); run by bench/run.ts.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RedisServer } from '../test/redis-server.js';
import { BENCH } from './models.js';

const ROOT = resolve(BENCH, '..');
const CLI = resolve(ROOT, 'dist/src/cli/main.js');
const MODEL = process.argv[2] ?? 'nsfwjs:mobilenet_v2';
const work = mkdtempSync(join(tmpdir(), 'cameras-bench-jobs-'));

function folderOf(count: number, name: string): string {
  const folder = join(work, name);
  mkdirSync(folder);
  for (let i = 0; i < count; i++)
    copyFileSync(resolve(BENCH, `composite/composite_${String(i).padStart(3, '0')}.jpg`), join(folder, `${i}.jpg`));
  return folder;
}

function batch(folder: string, out: string, extra: string[]): number {
  const start = performance.now();
  execFileSync(process.execPath, [
    CLI,
    'batch',
    folder,
    '--model',
    MODEL,
    '--methods',
    'cameras',
    '--out-dir',
    join(work, out),
    '--quiet',
    ...extra,
  ]);
  return (performance.now() - start) / 1000;
}

const redis = await RedisServer.start(work);
const url = redis.url;
const small = folderOf(4, 'small');
const large = folderOf(20, 'large');
const warm = folderOf(4, 'warm');
const result: Record<string, unknown> = { task: 'jobs', model: MODEL, jobs: [4, 20] };
const workers: ChildProcess[] = [];
try {
  const slope = (a: number, b: number) => (b - a) / 16;
  const embedded = [batch(small, 'e4', ['--threads', '2']), batch(large, 'e20', ['--threads', '2'])];
  result.embedded = { seconds: embedded, perJob: slope(embedded[0] as number, embedded[1] as number) };
  for (const count of [1, 2]) {
    const threads = String(2 / count);
    for (let i = workers.length; i < count; i++)
      workers.push(spawn(process.execPath, [CLI, 'worker', '--redis', url, '--threads', threads, '--quiet'], { stdio: 'ignore' }));
    batch(warm, `warm${count}`, ['--redis', url]); // every worker's child loads the model before the timed runs
    const through = [batch(small, `r${count}-4`, ['--redis', url]), batch(large, `r${count}-20`, ['--redis', url])];
    result[`redis${count}`] = { seconds: through, perJob: slope(through[0] as number, through[1] as number) };
  }
} finally {
  for (const w of workers) w.kill('SIGTERM');
  await redis.kill();
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
