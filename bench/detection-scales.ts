/**
 * The composite detector per input scale (issues 23 and 25): mAP@0.5 on the 100 benchmark scenes
 * (bench/composite-detection) resized bicubically to each scale (as CAMERAS resizes its input), boxes scaled back;
 * and CAMERAS' pointing game per annotated box, each scale's map alone and fused (the box and its class as the target).
 * Prints one JSON line per model.
 * `node dist/bench/detection-scales.js [model ...]` (default: composite:detector)
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseCoco } from '../src/datasets/coco.js';
import { classMask } from '../src/datasets/mask.js';
import { type Box, boxIou } from '../src/engine/detections.js';
import { resizeInput } from '../src/engine/resize.js';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import { pointingHit, pointOf } from '../src/metrics/pointing-game.js';
import { zooEntry } from '../src/models/zoo.js';
import { BENCH } from './models.js';

const SCENES = resolve(BENCH, 'composite-detection');
const annotations = parseCoco(readFileSync(resolve(SCENES, 'annotations.json'), 'utf8'), 'annotations.json');

/** VOC all-point AP at IoU 0.5 per class (greedy by score), averaged over the classes present. */
function meanAp(
  found: { image: number; box: Box; label: number; score: number }[],
  truth: { image: number; box: Box; label: number }[],
): number {
  const aps: number[] = [];
  for (const label of new Set(truth.map((t) => t.label))) {
    const gts = truth.filter((t) => t.label === label);
    const used = new Set<(typeof gts)[number]>();
    const predictions = found.filter((f) => f.label === label).sort((a, b) => b.score - a.score);
    let tp = 0;
    const precision: number[] = [];
    const recall: number[] = [];
    predictions.forEach((p, i) => {
      let best: (typeof gts)[number] | undefined;
      let bestIou = 0;
      for (const g of gts)
        if (g.image === p.image && boxIou(p.box, g.box) > bestIou) {
          bestIou = boxIou(p.box, g.box);
          best = g;
        }
      if (best && bestIou >= 0.5 && !used.has(best)) {
        used.add(best);
        tp++;
      }
      precision.push(tp / (i + 1));
      recall.push(tp / gts.length);
    });
    let ap = 0;
    let previous = 0;
    for (let i = 0; i < recall.length; i++) {
      const r = recall[i] as number;
      if (r > previous) {
        ap += (r - previous) * Math.max(...precision.slice(i));
        previous = r;
      }
    }
    aps.push(ap);
  }
  return aps.reduce((a, b) => a + b, 0) / aps.length;
}

const models = process.argv.slice(2);
for (const model of models.length ? models : ['composite:detector']) {
  const explainer = await createExplainer({
    model,
    threads: 2,
    profile: { labels: zooEntry('composite:detector')?.labels, detectionLayout: 'yolo', layer: zooEntry('composite:detector')?.layer },
  });
  const scales = explainer.profile.resolutions;
  const labels = explainer.profile.labels as readonly string[];
  const found = new Map<number, { image: number; box: Box; label: number; score: number }[]>(scales.map((s) => [s, []]));
  const truth: { image: number; box: Box; label: number }[] = [];
  const hits = new Map<string, number>([...scales.map((s) => [String(s), 0] as [string, number]), ['fused', 0]]);
  annotations.forEach((a, image) => {
    for (const o of a.objects)
      truth.push({ image, box: [o.box.xmin, o.box.ymin, o.box.xmax + 1, o.box.ymax + 1], label: labels.indexOf(o.className) });
  });
  for (const [image, a] of annotations.entries()) {
    const x = explainer.preprocess(await readImage(resolve(SCENES, a.file)));
    for (const s of scales)
      for (const d of await explainer.detect(resizeInput(x, s), { scoreThreshold: 0.01 }))
        found.get(s)?.push({
          image,
          box: d.box.map((v) => (v * a.width) / s) as unknown as Box,
          label: d.label,
          score: d.score,
        });
    for (const o of a.objects) {
      const target = await explainer.detectionTarget(
        { box: [o.box.xmin, o.box.ymin, o.box.xmax + 1, o.box.ymax + 1], label: labels.indexOf(o.className) },
        { width: a.width, height: a.height },
      );
      const mask = classMask({ ...a, objects: [o] }, o.className);
      if (!mask) continue;
      const result = await explainer.explain(x, { method: 'cameras', target, perScale: true });
      const hit = (map: ArrayLike<number>, side: number) => pointingHit(mask, pointOf(map, side, side, a.height, a.width)) === 1;
      if (hit(result.map, result.width)) hits.set('fused', (hits.get('fused') as number) + 1);
      for (const { resolution, map } of result.scaleMaps ?? [])
        if (!map.empty && hit(map.map, map.width)) hits.set(String(resolution), (hits.get(String(resolution)) as number) + 1);
    }
  }
  const round = (v: number) => Math.round(v * 1000) / 1000;
  process.stdout.write(
    `${JSON.stringify({
      model,
      layer: explainer.layer.name,
      boxes: truth.length,
      map50PerScale: Object.fromEntries(scales.map((s) => [s, round(meanAp(found.get(s) ?? [], truth))])),
      pointingPerScale: Object.fromEntries(scales.map((s) => [s, round((hits.get(String(s)) as number) / truth.length)])),
      pointingFused: round((hits.get('fused') as number) / truth.length),
    })}\n`,
  );
  await explainer.dispose();
}
