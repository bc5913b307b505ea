import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseVoc } from '../src/datasets/voc.js';
import { softmax, topOne } from '../src/engine/scores.js';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import { scorePair } from '../src/jobs/evaluate.js';
import type { ExplainResult } from '../src/methods/method.js';
import { causalMetric } from '../src/metrics/insertion-deletion.js';
import type { ScoredRecord } from '../src/metrics/metric.js';
import { pointingMetric } from '../src/metrics/pointing-game.js';
import { ROOT } from './helpers.js';

// composite_002: a bag (box 21-110 x 93-190 of 224 x 224) that the composite model takes for a t-shirt, so the
// model's top-1 class and the annotated class differ.
const NAME = 'composite_002';
const annotation = parseVoc(readFileSync(resolve(ROOT, `bench/composite/${NAME}.xml`), 'utf8'), NAME);

/** A 224 x 224 map: 1 on a 9 x 9 blob centred at (x, y), a little everywhere else. */
function blob(x: number, y: number): ExplainResult {
  const map = new Float32Array(224 * 224).fill(0.05);
  for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) map[(y + dy) * 224 + x + dx] = 1;
  return { map, width: 224, height: 224, empty: false, method: 'test', target: 'logit', output: 'logits', usedResolutions: [224] };
}

describe("scorePair: one pair's scores, wired to the right map, class and input", () => {
  const explainer = createExplainer({ model: 'composite:fashion-single-scale', threads: 2 });
  after(async () => (await explainer).dispose());
  const base = { annotation, className: 'bag', tolerance: 15, annotatedClass: false };

  it('pointing: a hit when the maximum lies in the box, a miss 60 px outside it; the pair is not difficult', async () => {
    const e = await explainer;
    const tensor = e.preprocess(await readImage(resolve(ROOT, `bench/composite/${NAME}.jpg`)));
    const bag = e.profile.labels?.indexOf('bag') as number;
    const inside = await scorePair(e, tensor, { ...blob(60, 140), classIndex: bag }, { ...base, metrics: ['pointing'] });
    const outside = await scorePair(e, tensor, { ...blob(180, 30), classIndex: bag }, { ...base, metrics: ['pointing'] });
    assert.deepEqual(inside, { pointing: 1, difficult: false });
    assert.deepEqual(outside, { pointing: -1, difficult: false });
  });

  it("density: the explained class's probability on the input times the map, per unit of area", async () => {
    const e = await explainer;
    const tensor = e.preprocess(await readImage(resolve(ROOT, `bench/composite/${NAME}.jpg`)));
    const bag = e.profile.labels?.indexOf('bag') as number;
    const result = { ...blob(60, 140), classIndex: bag };
    const scores = await scorePair(e, tensor, result, { ...base, metrics: ['density'] });
    const area = result.map.reduce((a, b) => a + b, 0) / result.map.length;
    const kept = Float32Array.from(tensor.data, (v, i) => v * (result.map[i % (224 * 224)] as number));
    const removed = Float32Array.from(tensor.data, (v, i) => v * (1 - (result.map[i % (224 * 224)] as number)));
    const [a, b] = await e.forward([
      { data: kept, shape: tensor.shape },
      { data: removed, shape: tensor.shape },
    ]);
    assert.ok(Math.abs((scores.rhoPlus as number) - (softmax(a as Float32Array)[bag] as number) / area) < 1e-9);
    assert.ok(Math.abs((scores.rhoMinus as number) - (softmax(b as Float32Array)[bag] as number) / (1 - area)) < 1e-9);
  });

  it("density reads no annotation and rewards sparse maps: a 2 x 2 corner outscores the object's own box on rho+", async () => {
    // The caveat the README states beside the metric, measured: rho+ divides by the map's area, so a tiny map holding
    // almost none of the class's evidence wins; rho- does tell the two apart.
    const e = await explainer;
    const name = 'composite_000'; // an ankle boot in the box 48-148 x 115-203
    const tensor = e.preprocess(await readImage(resolve(ROOT, `bench/composite/${name}.jpg`)));
    const boot = e.profile.labels?.indexOf('ankle_boot') as number;
    const spec = {
      annotation: parseVoc(readFileSync(resolve(ROOT, `bench/composite/${name}.xml`), 'utf8'), name),
      className: 'ankle_boot',
      tolerance: 15,
      annotatedClass: false,
      metrics: ['density'],
    };
    const rectangle = (x0: number, y0: number, w: number, h: number): ExplainResult => {
      const map = new Float32Array(224 * 224);
      for (let y = y0; y < y0 + h; y++) map.fill(1, y * 224 + x0, y * 224 + x0 + w);
      return {
        map,
        width: 224,
        height: 224,
        empty: false,
        method: 'test',
        target: 'logit',
        output: 'logits',
        usedResolutions: [224],
        classIndex: boot,
      };
    };
    const corner = await scorePair(e, tensor, rectangle(0, 0, 2, 2), spec);
    const box = await scorePair(e, tensor, rectangle(48, 115, 100, 88), spec);
    assert.ok((corner.rhoPlus as number) > 50 * (box.rhoPlus as number), `corner ${corner.rhoPlus}, box ${box.rhoPlus}`);
    assert.ok((box.rhoMinus as number) < (corner.rhoMinus as number) / 100, `box ${box.rhoMinus}, corner ${corner.rhoMinus}`);
  });

  it("insertion and deletion follow the model's top-1 class, or the annotated class with annotatedClass", async () => {
    const e = await explainer;
    const tensor = e.preprocess(await readImage(resolve(ROOT, `bench/composite/${NAME}.jpg`)));
    const bag = e.profile.labels?.indexOf('bag') as number;
    const top = topOne(await e.logits(tensor)).index;
    assert.notEqual(top, bag, 'the model takes this bag for another class');
    const result = { ...blob(60, 140), classIndex: bag };
    const forward = (inputs: Parameters<typeof e.forward>[0]) => e.forward(inputs);
    for (const [annotatedClass, followed] of [
      [false, top],
      [true, bag],
    ] as const) {
      const scores = await scorePair(e, tensor, result, { ...base, annotatedClass, metrics: ['insdel'] });
      const deletion = await causalMetric(forward, tensor, result.map, 'deletion', { classIndex: followed });
      const insertion = await causalMetric(forward, tensor, result.map, 'insertion', { classIndex: followed });
      assert.equal(scores.deletion, deletion.auc, `annotatedClass ${annotatedClass}`);
      assert.equal(scores.insertion, insertion.auc);
    }
  });
});

describe("the pointing game's summary, all pairs and the 'difficult' subset", () => {
  it('is the mean over the classes of hits / (hits + misses), the subset counting its own pairs', () => {
    const records: ScoredRecord[] = [
      { class: 'a', pointing: 1, difficult: true },
      { class: 'a', pointing: -1, difficult: false },
      { class: 'b', pointing: -1, difficult: true },
      { class: 'b', pointing: 1, difficult: false },
      { class: 'b', pointing: 1, difficult: false },
      // A skipped pair (all its boxes difficult in VOC's sense) counts nowhere.
      { class: 'a', pointing: 0, difficult: false },
    ];
    const [all, difficult] = pointingMetric.columns;
    // a: 1 hit of 2; b: 2 hits of 3; c: never tried, 0.
    assert.ok(Math.abs((all?.summarise(records, ['a', 'b', 'c']) as number) - (1 / 2 + 2 / 3 + 0) / 3) < 1e-12);
    // Difficult pairs only: a 1 of 1, b 0 of 1, c 0.
    assert.ok(Math.abs((difficult?.summarise(records, ['a', 'b', 'c']) as number) - (1 + 0 + 0) / 3) < 1e-12);
    assert.equal(
      difficult?.summarise(
        records.filter((r) => !r.difficult),
        ['a', 'b'],
      ),
      undefined,
      'no difficult pair, no subset score',
    );
  });
});
