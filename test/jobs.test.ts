import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { planBatch, runBatch } from '../src/jobs/batch.js';
import { batchInputs, readManifest } from '../src/jobs/inputs.js';
import { ROOT } from './helpers.js';
import { RedisServer } from './redis-server.js';

const CLI = resolve(ROOT, 'dist/src/cli/main.js');
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const skip = hasRedis ? false : 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)';
if (skip) process.stderr.write(`jobs tests through Redis skipped: ${skip}\n`);

const work = mkdtempSync(join(tmpdir(), 'cameras-jobs-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Ten composite images (a small trained CNN: jobs take a fraction of a second) and one corrupt JPEG. */
const images = join(work, 'images');
mkdirSync(images);
for (let i = 0; i < 10; i++) copyFileSync(resolve(ROOT, `bench/composite/composite_00${i}.jpg`), join(images, `img${i}.jpg`));
const METHODS = ['gradcam', 'gradient', 'hirescam', 'layercam'];
const MODEL = 'composite:fashion-single-scale';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cameras(args: string[]): Promise<Run> {
  return new Promise((done) =>
    execFile(process.execPath, [CLI, ...args], (error, stdout, stderr) =>
      done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** A worker in its own process group, so SIGKILL takes its sandboxed children with it. */
function worker(url: string, queue: string, lockMs = 2000): ChildProcess & { log: string[] } {
  const child = spawn(process.execPath, [CLI, 'worker', '--redis', url, '--queue', queue, '--lock-ms', String(lockMs), '--threads', '1'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  }) as ChildProcess & { log: string[] };
  child.log = [];
  child.stderr?.on('data', (chunk: Buffer) => child.log.push(...chunk.toString().trim().split('\n')));
  return child;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(-(child.pid as number), signal);
  await exited;
}

async function until(test: () => boolean, what: string, ms = 60_000): Promise<void> {
  const start = Date.now();
  while (!test()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The maps (.npy bytes) and records (less their timing) a batch folder holds, by file name. */
function outputs(folder: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(folder).sort()) {
    assert.ok(!name.includes('.partial'), `a half-written file was left: ${name}`);
    if (name.endsWith('.npy')) files.set(name, readFileSync(join(folder, name)).toString('base64'));
    if (name.endsWith('.json')) {
      const { seconds, ...record } = JSON.parse(readFileSync(join(folder, name), 'utf8')) as { seconds: number };
      files.set(name, JSON.stringify(record));
    }
  }
  return files;
}

describe('batch jobs', () => {
  let embedded: Map<string, string>;
  before(async () => {
    const run = await cameras(['batch', images, '--model', MODEL, '--methods', METHODS.join(','), '--out-dir', join(work, 'embedded')]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^40 jobs: 40 run, 0 already done, 0 failed/);
    embedded = outputs(join(work, 'embedded'));
    assert.equal(embedded.size, 80);
  });

  it('plans one job per image, model and method, keyed by content; a rerun skips finished jobs; manifests read', async () => {
    const jobs = await planBatch(await batchInputs([images]), { models: [MODEL], methods: ['gradcam'], outDir: join(work, 'plan') });
    assert.equal(jobs.length, 10);
    assert.equal(new Set(jobs.map((j) => j.key)).size, 10);
    // The same picture under another name is the same content: the same key.
    copyFileSync(join(images, 'img0.jpg'), join(work, 'copy.jpg'));
    const [copy] = await planBatch(await batchInputs([join(work, 'copy.jpg')]), {
      models: [MODEL],
      methods: ['gradcam'],
      outDir: join(work, 'plan'),
    });
    assert.equal(copy?.key, jobs[0]?.key);
    // Listed twice: one job. A model file given relative to here is planned by its absolute path.
    const twice = await planBatch(await batchInputs([join(images, 'img0.jpg'), join(images, 'img0.jpg')]), {
      models: [MODEL],
      methods: ['gradcam'],
      outDir: join(work, 'plan'),
    });
    assert.equal(twice.length, 1);
    const relative = await planBatch(await batchInputs([join(images, 'img0.jpg')]), {
      models: ['assets/models/composite_fashion_single_scale.onnx'],
      methods: ['gradcam'],
      outDir: join(work, 'plan'),
    });
    assert.equal(relative[0]?.model, resolve(ROOT, 'assets/models/composite_fashion_single_scale.onnx'));
    const again = await cameras(['batch', images, '--model', MODEL, '--methods', METHODS.join(','), '--out-dir', join(work, 'embedded')]);
    assert.match(again.stdout, /^40 jobs: 0 run, 40 already done, 0 failed/);
    writeFileSync(join(work, 'list.csv'), 'image,class\nimages/img1.jpg,bag\nimages/img2.jpg,\n');
    assert.deepEqual(await readManifest(join(work, 'list.csv')), [
      { image: join(images, 'img1.jpg'), class: 'bag' },
      { image: join(images, 'img2.jpg') },
    ]);
    writeFileSync(join(work, 'list.jsonl'), '{"image": "images/img3.jpg", "class": 8}\n');
    assert.deepEqual(await readManifest(join(work, 'list.jsonl')), [{ image: join(images, 'img3.jpg'), class: '8' }]);
    writeFileSync(join(work, 'bad.csv'), 'path\nx.jpg\n');
    await assert.rejects(readManifest(join(work, 'bad.csv')), /header with an 'image' column/);
  });

  it('a corrupt image fails its own job with one line; the others complete (embedded)', async () => {
    const folder = join(work, 'with-corrupt');
    mkdirSync(folder);
    copyFileSync(join(images, 'img0.jpg'), join(folder, 'good.jpg'));
    writeFileSync(join(folder, 'broken.jpg'), Buffer.from('\xff\xd8\xff\xe0 not really a jpeg'));
    const jobs = await planBatch(await batchInputs([folder]), { models: [MODEL], methods: ['gradcam'], outDir: join(folder, 'out') });
    const outcome = await runBatch(jobs, { threads: 1 });
    assert.equal(outcome.done.length, 1);
    assert.equal(outcome.failed.length, 1);
    assert.match(outcome.failed[0]?.reason ?? '', /broken\.jpg/);
    assert.equal((outcome.failed[0]?.reason ?? '').split('\n').length, 1);
  });

  describe('through BullMQ on a real redis-server', { skip }, () => {
    let redis: RedisServer;
    before(async () => {
      redis = await RedisServer.start(work, { durable: true });
    });
    after(async () => {
      await redis?.kill();
    });

    it('2 worker processes complete 40 jobs, each output equal to the embedded run', async () => {
      const workers = [worker(redis.url, 'two'), worker(redis.url, 'two')];
      try {
        const run = await cameras([
          'batch',
          images,
          '--model',
          MODEL,
          '--methods',
          METHODS.join(','),
          '--out-dir',
          join(work, 'two'),
          '--redis',
          redis.url,
          '--queue',
          'two',
        ]);
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^40 jobs: 40 run, 0 already done, 0 failed/);
      } finally {
        for (const w of workers) await stop(w);
      }
      assert.deepEqual(outputs(join(work, 'two')), embedded);
    });

    // CAMERAS at 8 scales: jobs long enough (about 0.3 s) that a kill or a restart lands mid-job.
    let camerasEmbedded: Map<string, string>;
    const camerasBatch = (out: string, queue: string) =>
      cameras([
        'batch',
        images,
        '--model',
        MODEL,
        '--methods',
        'cameras',
        '--out-dir',
        join(work, out),
        '--redis',
        redis.url,
        '--queue',
        queue,
      ]);
    before(async () => {
      const run = await cameras(['batch', images, '--model', MODEL, '--methods', 'cameras', '--out-dir', join(work, 'cameras-embedded')]);
      assert.equal(run.code, 0, run.stderr);
      camerasEmbedded = outputs(join(work, 'cameras-embedded'));
    });

    it('a worker killed with SIGKILL mid-job: its job is taken over and completed, nothing lost, duplicated or half-written', async () => {
      const victim = worker(redis.url, 'kill', 1500);
      const batch = camerasBatch('kill', 'kill');
      await until(() => victim.log.some((line) => line.startsWith('done')), 'the first job done');
      await stop(victim, 'SIGKILL'); // the next job is active: its lock lapses, another worker takes it over
      const rescuer = worker(redis.url, 'kill', 1500);
      try {
        const run = await batch;
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^10 jobs: 10 run, 0 already done, 0 failed/);
      } finally {
        await stop(rescuer);
      }
      assert.ok(
        rescuer.log.some((line) => line.startsWith('took over')),
        `the killed worker's job was taken over: ${rescuer.log.join(' | ')}`,
      );
      assert.deepEqual(outputs(join(work, 'kill')), camerasEmbedded);
      const lines = readFileSync(join(work, 'kill/results.jsonl'), 'utf8').trim().split('\n');
      assert.equal(new Set(lines.map((l) => (JSON.parse(l) as { key: string }).key)).size, 10, 'each job once');
      assert.equal(lines.length, 10);
    });

    it('Redis killed and restarted mid-run (append-only file on): the run completes, nothing lost', async () => {
      const busy = worker(redis.url, 'restart', 1500);
      try {
        const batch = camerasBatch('restart', 'restart');
        await until(() => busy.log.some((line) => line.startsWith('done')), 'the first job done');
        await redis.kill();
        await new Promise((r) => setTimeout(r, 500));
        await redis.start();
        const run = await batch;
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^10 jobs: 10 run, 0 already done, 0 failed/);
      } finally {
        await stop(busy);
      }
      assert.deepEqual(outputs(join(work, 'restart')), camerasEmbedded);
    });

    it('Redis restarted without its data mid-run: a line when it goes and when it is back, lost jobs queued again, no traces', async () => {
      const volatile = await RedisServer.start(work); // no append-only file: a restart empties the queue
      const busy = worker(volatile.url, 'volatile', 1500);
      try {
        const batch = cameras([
          'batch',
          images,
          '--model',
          MODEL,
          '--methods',
          'cameras',
          '--out-dir',
          join(work, 'volatile'),
          '--redis',
          volatile.url,
          '--queue',
          'volatile',
        ]);
        await until(() => busy.log.some((line) => line.startsWith('done')), 'the first job done');
        await volatile.kill();
        await new Promise((r) => setTimeout(r, 1500));
        await volatile.start();
        const run = await batch;
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^10 jobs: 10 run, 0 already done, 0 failed/);
        const notes = run.stderr.split('\n').filter((line) => !/^batch \d+\/10 /.test(line) && line);
        assert.match(notes[0] ?? '', /^lost Redis at redis:\/\/127\.0\.0\.1:\d+ \(.*\); waiting for it to come back$/);
        assert.match(notes.join('\n'), /^Redis at \S+ is back$/m);
        assert.match(
          notes.join('\n'),
          /restarted without its data and lost \d+ queued jobs?: queued again \(run redis-server with --appendonly yes/,
        );
        assert.ok(
          notes.every((line) => /^(lost Redis|Redis at)/.test(line)),
          `only Redis lines besides progress: ${notes.join(' | ')}`,
        );
        await until(() => busy.log.some((line) => line.startsWith('Redis at')), "the worker's line that Redis is back");
      } finally {
        await stop(busy);
        await volatile.kill();
      }
      assert.ok(
        busy.log.some((line) => line.startsWith('lost Redis at')),
        busy.log.join(' | '),
      );
      const traces = busy.log.filter((line) => /^\s+at |Error:|^\s*[{}]/.test(line));
      assert.deepEqual(traces, [], `the worker printed traces: ${busy.log.join(' | ')}`);
      assert.deepEqual(outputs(join(work, 'volatile')), camerasEmbedded);
    });

    it('a corrupt image among the inputs: its job lands in the failed list with its one-line reason, the others complete', async () => {
      const folder = join(work, 'corrupt-redis');
      mkdirSync(folder);
      copyFileSync(join(images, 'img0.jpg'), join(folder, 'good.jpg'));
      writeFileSync(join(folder, 'broken.jpg'), Buffer.from('\xff\xd8\xff\xe0 not really a jpeg'));
      const w = worker(redis.url, 'corrupt');
      try {
        const run = await cameras([
          'batch',
          folder,
          '--model',
          MODEL,
          '--methods',
          'gradcam',
          '--out-dir',
          join(folder, 'out'),
          '--redis',
          redis.url,
          '--queue',
          'corrupt',
        ]);
        assert.equal(run.code, 2, 'failed jobs are bad input: exit 2');
        assert.match(run.stdout, /^2 jobs: 1 run, 0 already done, 1 failed/);
        // Progress lines (stderr is not a terminal here) apart, the failure is one line.
        const failures = run.stderr
          .trim()
          .split('\n')
          .filter((line) => !line.startsWith('batch '));
        assert.equal(failures.length, 1, run.stderr);
        assert.match(failures[0] as string, /^failed: .*broken\.jpg \(gradcam\): .*broken\.jpg/);
        const status = await cameras(['batch', '--status', '--redis', redis.url, '--queue', 'corrupt', '--json']);
        const { counts } = JSON.parse(status.stdout) as { counts: { failed: number } };
        assert.equal(counts.failed, 1, status.stdout + status.stderr);
      } finally {
        await stop(w);
      }
      assert.equal(readdirSync(join(folder, 'out')).filter((n) => n.endsWith('.json')).length, 1);
    });

    it('cameras eval runs its pairs as the same jobs on workers: the records and summary of the embedded eval', async () => {
      const data = join(work, 'eval-data');
      mkdirSync(data);
      for (const name of ['composite_000', 'composite_001', 'composite_002']) {
        copyFileSync(resolve(ROOT, `bench/composite/${name}.jpg`), join(data, `${name}.jpg`));
        copyFileSync(resolve(ROOT, `bench/composite/${name}.xml`), join(data, `${name}.xml`));
      }
      // An image whose size is not its annotation's: that pair fails with its reason, the others are scored.
      copyFileSync(join(images, 'img3.jpg'), join(data, 'wrong.jpg'));
      writeFileSync(
        join(data, 'wrong.xml'),
        readFileSync(join(data, 'composite_000.xml'), 'utf8')
          .replace(/<width>\d+<\/width>/, '<width>999</width>')
          .replace(/composite_000/g, 'wrong'),
      );
      const args = ['eval', data, '--model', MODEL, '--methods', 'gradcam,gradient', '--metrics', 'pointing,density,confidence'];
      const records = (folder: string) =>
        readFileSync(join(folder, 'results.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .slice(1)
          .map((line) => {
            const { seconds, ...record } = JSON.parse(line) as { seconds: number; image: string; method: string };
            return record;
          })
          .sort((a, b) => a.image.localeCompare(b.image) || a.method.localeCompare(b.method));
      const here = await cameras([...args, '--out-dir', join(work, 'eval-here')]);
      assert.equal(here.code, 2, here.stderr);
      const w = worker(redis.url, 'eval');
      let there: Run;
      try {
        there = await cameras([...args, '--out-dir', join(work, 'eval-there'), '--redis', redis.url, '--queue', 'eval']);
      } finally {
        await stop(w);
      }
      assert.equal(there.code, 2, `the mismatched pair is bad input: exit 2 (${there.stderr})`);
      for (const run of [here, there]) {
        const failures = run.stderr
          .trim()
          .split('\n')
          .filter((line) => !line.startsWith('eval '));
        assert.equal(failures.length, 2, run.stderr);
        assert.match(failures[0] as string, /^failed: .*wrong\.jpg \(grad\w+\): .*wrong\.jpg is \d+ x \d+ but its annotation says 999 x/);
      }
      assert.deepEqual(records(join(work, 'eval-there')), records(join(work, 'eval-here')));
      assert.equal(records(join(work, 'eval-here')).length, 6);
      assert.equal(readFileSync(join(work, 'eval-there/summary.csv'), 'utf8'), readFileSync(join(work, 'eval-here/summary.csv'), 'utf8'));
      // The jobs' maps are kept (maps/), equal byte for byte.
      const maps = (folder: string) => outputs(join(work, folder, 'maps'));
      assert.deepEqual(maps('eval-there'), maps('eval-here'));
      assert.equal([...maps('eval-here').keys()].filter((n) => n.endsWith('.npy')).length, 6);
    });
  });
});
