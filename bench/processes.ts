import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Times of a task's runs and its peak RSS (null where GNU time is missing). */
export interface Measurement {
  times: number[];
  maxRssMiB: number | null;
  [key: string]: unknown;
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** Wall time and peak RSS of whole processes (GNU time reports the RSS). */
export function processRuns(command: string, args: string[], runs: number): Measurement {
  const scratch = mkdtempSync(join(tmpdir(), 'cameras-bench-'));
  const times: number[] = [];
  let rss = 0;
  const timeTool = existsSync('/usr/bin/time');
  try {
    for (let i = 0; i < runs; i++) {
      const report = join(scratch, 'rss');
      const start = performance.now();
      const run = timeTool
        ? spawnSync('/usr/bin/time', ['-f', '%M', '-o', report, command, ...args], { encoding: 'utf8' })
        : spawnSync(command, args, { encoding: 'utf8' });
      times.push((performance.now() - start) / 1000);
      if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${run.stderr}`);
      if (timeTool) rss = Math.max(rss, Number(readFileSync(report, 'utf8').trim().split('\n').pop()) / 1024);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { times, maxRssMiB: timeTool ? rss : null };
}
