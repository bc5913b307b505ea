import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildInception } from '../../src/models/inception.js';
import { parseSafetensors } from '../../src/models/safetensors.js';
import { bytes, difference, npy, ROOT } from '../helpers.js';

// torchvision's Inception-v3 cannot be narrowed, and its 100 MB of weights are not committed: this test
// makes its reference with Debian's python3-torchvision when that is installed, and says so when not.
const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
const skip = hasTorch ? false : `${PYTHON} cannot import torchvision (apt-get install python3-torchvision)`;
if (skip) process.stdout.write(`# SKIPPED torchvision Inception-v3 parity: ${skip}\n`);

describe('extended: torchvision Inception-v3 from a state dict', { skip }, () => {
  const folder = mkdtempSync(join(tmpdir(), 'cameras-inception-'));
  after(() => rmSync(folder, { recursive: true, force: true }));
  it("gives torchvision's logits at 299 and 399 px (transform_input on)", async () => {
    const made = spawnSync(PYTHON, [resolve(ROOT, 'scripts/torchvision_inception_reference.py'), folder], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const model = buildInception(parseSafetensors(bytes(join(folder, 'inception_v3.safetensors'))), { transformInput: true });
    const session = await ort.InferenceSession.create(model);
    for (const size of [299, 399]) {
      const x = Float32Array.from({ length: 3 * size * size }, (_, i) => Math.fround(Math.sin(i * 0.37)));
      const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, size, size]) });
      const d = difference(out.logits?.data as Float32Array, npy(join(folder, `inception_v3.${size}.logits.npy`)).data);
      assert.ok(d.max <= 1e-5 * d.scale, `${size} px: logits differ by ${d.max} at scale ${d.scale}`);
    }
    await session.release();
  });
});
