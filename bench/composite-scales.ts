/**
 * The composite benchmark per input scale (issue 25): for each model, its accuracy on the 100 benchmark composites
 * resized bicubically to each scale (as CAMERAS resizes its input), CAMERAS' pointing game at each scale's map alone
 * and fused (the explained class given: the annotated one, so every scale is kept), and the fused map with the
 * class-consistency rule (top-1, as `cameras eval` runs it); pointing as hits over the images (one item each, TorchRay's
 * 15 px tolerance). Prints one JSON line per model.
 * `node dist/bench/composite-scales.js [model ...]` (default: composite:fashion and the multi-scale trained file)
 */
import { resolve } from 'node:path';
import { loadDataset } from '../src/datasets/load-node.js';
import { classMask } from '../src/datasets/mask.js';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import { pointingHit, pointOf } from '../src/metrics/pointing-game.js';
import { zooEntry } from '../src/models/zoo.js';
import { BENCH } from './models.js';

const ROOT = resolve(BENCH, '..');
const models = process.argv.slice(2);
const items = await loadDataset(resolve(BENCH, 'composite'));
for (const model of models.length ? models : ['composite:fashion', resolve(ROOT, 'assets/models/composite_fashion_multiscale.onnx')]) {
  const explainer = await createExplainer({ model, threads: 2, profile: { labels: zooEntry('composite:fashion')?.labels } });
  const scales = explainer.profile.resolutions;
  const labels = explainer.profile.labels as readonly string[];
  const correct = new Map<number, number>(scales.map((s) => [s, 0]));
  const hits = new Map<string, number>([...scales.map((s) => [String(s), 0] as [string, number]), ['fused', 0], ['fusedTop1', 0]]);
  for (const item of items) {
    const object = item.annotation.objects[0];
    if (!object) continue;
    const cls = labels.indexOf(object.className);
    const mask = classMask(item.annotation, object.className);
    if (!mask) continue;
    const x = explainer.preprocess(await readImage(item.image));
    for (const s of scales) {
      const logits = await explainer.logits(x, s);
      if (logits.indexOf(Math.max(...logits)) === cls) correct.set(s, (correct.get(s) as number) + 1);
    }
    const { width, height } = item.annotation;
    const hit = (map: ArrayLike<number>, side: number) => pointingHit(mask, pointOf(map, side, side, height, width)) === 1;
    const given = await explainer.explain(x, { classIndex: cls, perScale: true });
    if (hit(given.map, given.height)) hits.set('fused', (hits.get('fused') as number) + 1);
    for (const { resolution, map } of given.scaleMaps ?? [])
      if (hit(map.map, map.height)) hits.set(String(resolution), (hits.get(String(resolution)) as number) + 1);
    const top1 = await explainer.explain(x, {});
    if (hit(top1.map, top1.height)) hits.set('fusedTop1', (hits.get('fusedTop1') as number) + 1);
  }
  const n = items.length;
  process.stdout.write(
    `${JSON.stringify({
      model,
      images: n,
      accuracy: Object.fromEntries([...correct].map(([s, c]) => [s, c / n])),
      pointing: Object.fromEntries([...hits].map(([k, h]) => [k, h / n])),
    })}\n`,
  );
  await explainer.dispose();
}
