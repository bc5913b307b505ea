import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
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
 * Runs every case of a reference folder (cases.json, inputs, golden maps) on `model` and checks the
 * issue's bounds: max |map - golden| <= 1e-3, mean <= 1e-4, identical classes per resolution, and golden
 * NaN maps (the reference's division by zero) returned as zeros with `empty: true`.
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
    const d = difference(result.map, golden);
    assert.ok(d.max <= 1e-3, `max |map - golden| = ${d.max}`);
    assert.ok(d.mean <= 1e-4, `mean |map - golden| = ${d.mean}`);
  }

  async dispose(): Promise<void> {
    for (const explainer of this.explainers.values()) await (await explainer).dispose();
  }
}
