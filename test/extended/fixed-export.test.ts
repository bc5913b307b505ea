import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { difference, hasShared, npy, ROOT, SHARED } from '../helpers.js';

// The issue's own case: torchvision's ResNet-18 exported as most people export it, with no dynamic axes,
// explained at the 8 default scales like the dynamic export. Needs Debian's python3-torchvision to export.
const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
const skip = !hasTorch
  ? `${PYTHON} cannot import torchvision (apt-get install python3-torchvision)`
  : hasShared
    ? false
    : '../shared/images not found';
if (skip) process.stdout.write(`# SKIPPED fixed-size ResNet-18 export: ${skip}\n`);

const EXPORT = `
import sys, torch, torchvision
torch.manual_seed(0)
model = torchvision.models.resnet18().eval()
torch.onnx.export(model, torch.randn(1, 3, 224, 224), sys.argv[1] + '/r18.onnx', opset_version=13)
torch.onnx.export(model, torch.randn(1, 3, 224, 224), sys.argv[1] + '/r18_dynamic.onnx', opset_version=13,
                  input_names=['input'], dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}})
`;

function cameras(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [resolve(ROOT, 'dist/src/cli/main.js'), ...args], (error, _stdout, stderr) =>
      done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('extended: a ResNet-18 torch.onnx.export without dynamic axes', { skip }, () => {
  const folder = mkdtempSync(join(tmpdir(), 'cameras-r18-'));
  after(() => rmSync(folder, { recursive: true, force: true }));
  it('explains dog.jpg at the 8 default scales with the map of the dynamic export', async () => {
    const made = spawnSync(PYTHON, ['-c', EXPORT, folder], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const maps = [];
    for (const name of ['r18', 'r18_dynamic']) {
      const map = join(folder, `${name}.npy`);
      const run = await cameras([
        'explain',
        join(SHARED, 'images/dog.jpg'),
        '--model',
        join(folder, `${name}.onnx`),
        '--save-map',
        map,
        '--quiet',
      ]);
      assert.equal(run.code, 0, run.stderr);
      maps.push(npy(map).data);
    }
    const d = difference(maps[0] as Float32Array, maps[1] as Float32Array);
    assert.ok(d.max <= 1e-5, `max |fixed - dynamic| = ${d.max}`);
  });
});
