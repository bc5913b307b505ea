import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers.js';

// semver comes with the lockfile's tree (hoisted by madge's and bullmq's dependencies); typed here by what we call.
const semver = createRequire(import.meta.url)('semver') as {
  satisfies(version: string, range: string): boolean;
  subset(sub: string, sup: string): boolean;
};

interface LockedPackage {
  dev?: boolean;
  optional?: boolean;
  os?: string[];
  cpu?: string[];
  engines?: { node?: string };
  hasInstallScript?: boolean;
}

const manifest = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  allowScripts?: Record<string, boolean>;
};
const lock = JSON.parse(readFileSync(resolve(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockedPackage & { engines?: { node?: string } }>;
};
const ours = manifest.engines.node;

/** The package name of a lockfile key (`node_modules/a/node_modules/@b/c` -> `@b/c`). */
function nameOf(key: string): string {
  return key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

/** Whether an os/cpu-restricted optional package would be installed on this machine. */
function installsHere(entry: LockedPackage): boolean {
  const allows = (list: string[] | undefined, value: string) =>
    !list || list.some((item) => item === value) || (list.every((item) => item.startsWith('!')) && !list.includes(`!${value}`));
  return allows(entry.os, process.platform) && allows(entry.cpu, process.arch);
}

describe('package: supported Node and install scripts (issue 24, item 10)', () => {
  it('the running Node satisfies engines, and the lockfile records the same range', () => {
    assert.ok(semver.satisfies(process.versions.node, ours), `Node ${process.versions.node} is outside engines ${ours}`);
    assert.equal(lock.packages['']?.engines?.node, ours, 'package-lock.json is stale: run npm install');
  });

  it("every runtime dependency's engines.node admits every Node we admit", () => {
    const narrower: string[] = [];
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (key === '' || entry.dev || !installsHere(entry)) continue;
      const theirs = entry.engines?.node;
      if (theirs && !semver.subset(ours, theirs)) narrower.push(`${nameOf(key)} wants ${theirs}`);
    }
    assert.deepEqual(narrower, [], `engines.node ${ours} admits Nodes these runtime dependencies do not`);
  });

  it('every dependency with an install script is decided in allowScripts', () => {
    const undecided = Object.entries(lock.packages)
      .filter(([key, entry]) => key !== '' && entry.hasInstallScript)
      .map(([key]) => nameOf(key))
      .filter((name) => manifest.allowScripts?.[name] === undefined);
    assert.deepEqual(undecided, [], 'add these to allowScripts in package.json (false unless the script is needed)');
    // onnxruntime-node's script downloads a CUDA add-on: denied, so installs work offline.
    assert.equal(manifest.allowScripts?.['onnxruntime-node'], false);
  });
});
