import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Explainer } from '../src/explainer.js';
import { bytes, difference, npy } from './helpers.js';

export interface ReferenceCase {
  name: string;
  input: string;
  class: number | null;
  resolutions: number[];
  layer: string;
  classPerResolution: Record<string, number>;
  probPerResolution: Record<string, number>;
  map: string;
}

/**
 * Runs every case of a reference folder (cases.json, inputs, golden maps) on `model`: identical classes per
 * resolution, and the map judged against the exact result, the authors' code in float64 (`float64/`):
 * max |ours - exact| <= 1e-5 (about 10x what we measure), except where PyTorch's own float32 map is farther
 * than that from the exact one (a ReLU gate whose input is within rounding of zero flips): there ours may be
 * no farther than PyTorch float32 is. Golden NaN maps (the reference's division by zero) come back as zeros
 * with `empty: true`. Each case's errors are kept for a summary: the summed mean error must not exceed PyTorch's.
 */
export function referenceCases(folder: string): ReferenceCase[] {
  return (JSON.parse(readFileSync(resolve(folder, 'cases.json'), 'utf8')) as { cases: ReferenceCase[] }).cases;
}

export class ParityChecker {
  private readonly explainers = new Map<string, Promise<Explainer>>();
  constructor(
    private readonly folder: string,
    private readonly modelPath: string,
  ) {}

  private explainer(layer: string): Promise<Explainer> {
    let found = this.explainers.get(layer);
    if (!found) {
      found = Explainer.create(ort, { model: bytes(this.modelPath), layer, threads: 2 });
      this.explainers.set(layer, found);
    }
    return found;
  }

  async check(c: ReferenceCase): Promise<void> {
    const explainer = await this.explainer(c.layer);
    const result = await explainer.explain(npy(resolve(this.folder, c.input)), {
      classIndex: c.class,
      resolutions: c.resolutions,
    });
    const golden = npy(resolve(this.folder, c.map)).data;
    assert.deepEqual(result.classPerResolution, c.classPerResolution, 'class per resolution');
    for (const [r, p] of Object.entries(c.probPerResolution)) {
      assert.ok(Math.abs((result.probPerResolution[r] as number) - p) < 1e-5, `probability at ${r}`);
    }
    const usedExpected = c.resolutions.filter(
      (r) => c.classPerResolution[r] === c.classPerResolution[c.resolutions[0] as number] || c.classPerResolution[r] === c.class,
    );
    assert.deepEqual(result.usedResolutions, usedExpected, 'used resolutions');
    assert.equal(result.width, c.resolutions[0]);
    if (golden.every((v) => Number.isNaN(v))) {
      assert.equal(result.empty, true, 'a NaN reference map is an empty map');
      assert.ok(
        result.map.every((v) => v === 0),
        'an empty map is all zero',
      );
      return;
    }
    assert.equal(result.empty, false);
    const exact = npy(resolve(this.folder, 'float64', basename(c.map))).data;
    const ours = difference(result.map, exact);
    const pytorch = difference(golden, exact);
    const bound = Math.max(1e-5, 1.01 * pytorch.max);
    assert.ok(ours.max <= bound, `max |map - exact| = ${ours.max}; PyTorch float32's own: ${pytorch.max}`);
    this.errors.push({ name: c.name, ours: ours.mean, pytorch: pytorch.mean, oursMax: ours.max, pytorchMax: pytorch.max });
  }

  /** Per case: mean and max |map - exact| of ours and of PyTorch float32. */
  readonly errors: { name: string; ours: number; pytorch: number; oursMax: number; pytorchMax: number }[] = [];

  /** Summed over the cases checked, our mean error against the exact map is no larger than PyTorch float32's. */
  checkSummedError(): void {
    const ours = this.errors.reduce((s, e) => s + e.ours, 0);
    const pytorch = this.errors.reduce((s, e) => s + e.pytorch, 0);
    assert.ok(this.errors.length > 0);
    assert.ok(ours <= pytorch, `summed mean error ${ours} exceeds PyTorch float32's ${pytorch}`);
  }

  async dispose(): Promise<void> {
    for (const explainer of this.explainers.values()) await (await explainer).dispose();
  }
}
