import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { probeLogits } from '../scripts/kernel-probe.js';
import { ROOT } from './helpers.js';

// ONNX Runtime picks its kernels by CPU (AVX-512 here, AVX2 on many machines) and float32 results differ in the last
// bits. It has no switch to restrict them, so the parity suite runs again under QEMU's user-mode emulation of a
// Haswell CPU (AVX2 and FMA, no AVX-512): what a machine without AVX-512 computes. `.ci/run` installs qemu-user.
const QEMU = ['/usr/bin/qemu-x86_64', '/usr/local/bin/qemu-x86_64'].find(
  (path) => spawnSync(path, ['-version'], { encoding: 'utf8' }).status === 0,
);
const CPU = 'Haswell-noTSX-IBRS';
const skip = QEMU ? false : 'qemu-x86_64 is not installed (apt-get install qemu-user)';
if (skip) process.stdout.write(`# SKIPPED the parity suite on AVX2 kernels: ${skip}\n`);

/** Runs a compiled test or script under the emulated CPU, without QEMU's notes on CPU features it lacks. */
function emulated(script: string): { status: number | null; output: string } {
  const run = spawnSync(QEMU as string, ['-cpu', CPU, process.execPath, resolve(ROOT, 'dist', script)], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${run.stdout}${run.stderr}`
    .split('\n')
    .filter((line) => !line.includes("TCG doesn't support"))
    .join('\n');
  return { status: run.status, output };
}

// On a machine that itself lacks AVX-512 both runs take the same kernels, and only the parity run is informative.
const nativeAvx512 = /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

describe('the parity suite on a CPU without AVX-512 (AVX2 kernels, emulated)', { skip }, () => {
  const same = nativeAvx512 ? false : 'this CPU has no AVX-512 either: both runs take the same kernels';
  it('the emulated CPU takes other kernels: the logits differ in the last bits', { skip: same }, async () => {
    const run = emulated('scripts/kernel-probe.js');
    assert.equal(run.status, 0, run.output);
    const emulatedLogits = JSON.parse(run.output.trim().split('\n').at(-1) as string) as number[];
    const native = await probeLogits();
    assert.equal(emulatedLogits.length, native.length);
    const largest = Math.max(...native.map((v, i) => Math.abs(v - (emulatedLogits[i] as number))));
    assert.ok(largest > 0 && largest < 1e-4, `native and AVX2 logits differ by ${largest}`);
  });
  it("CAMERAS equals the authors' code within the float32 bound there too", () => {
    const run = emulated('test/cameras-parity.test.js');
    assert.equal(
      run.status,
      0,
      run.output
        .split('\n')
        .filter((line) => /not ok|error|max \|/.test(line))
        .join('\n'),
    );
  });
});
