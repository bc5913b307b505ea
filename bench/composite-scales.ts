/**
 * The composite benchmark per input scale (issue 25): for each model, on the 100 benchmark composites resized
 * bicubically to each scale (as CAMERAS resizes its input), its accuracy at each scale, and CAMERAS' pointing game for
 * the annotated class: each scale's map alone, the fused map (every scale kept, the class being given; what
 * `cameras eval` scores, there averaged over classes), the fused map of the scales up to each size (which scales pull
 * it off), and two accumulations that are *not* the paper's, to see whether weighting would help: each scale's
 * activations and gradients both weighted by the class's probability there (so a scale's own product by p^2), and
 * only the scales the model gets right (an oracle, scored over the images it gets right at some scale, beside the
 * paper's fusion on those images). These are fusions of the same passes, one per scale and image. Then, in a separate
 * run, the paper's method as `cameras explain` runs it without --class: the model's top-1 class, and the
 * class-consistency rule (with the mean number of scales it keeps). Pointing as hits over the images (one item each,
 * TorchRay's 15 px tolerance). Prints one JSON line per model.
 * `node dist/bench/composite-scales.js [model ...]` (default: composite:fashion and composite:fashion-single-scale)
 */
import { resolve } from 'node:path';
import { loadDataset } from '../src/datasets/load-node.js';
import { classMask } from '../src/datasets/mask.js';
import type { FusionScale } from '../src/engine/fusion.js';
import { resizeInput } from '../src/engine/resize.js';
import { softmax } from '../src/engine/scores.js';
import { createExplainer } from '../src/index.js';
import { readImage } from '../src/io/image-node.js';
import { layerTensors } from '../src/methods/base-cam.js';
import { cameras, fusedRaw, normaliseFused } from '../src/methods/cameras.js';
import type { SaliencyMethod } from '../src/methods/method.js';
import { pointingHit, pointOf } from '../src/metrics/pointing-game.js';
import { zooEntry } from '../src/models/zoo.js';
import { BENCH } from './models.js';

/** Every variant's fused map of one image, keyed by name; `correct[s]`: the model's top-1 is the class at scale s. */
interface Variants {
  correct: boolean[];
  maps: Map<string, Float32Array>;
}

/** Scales the weighted fusion by: each scale's activation and gradient times w_s. */
function weighted(scales: FusionScale[], weights: number[]): FusionScale[] {
  const times = (t: FusionScale['activation'], w: number) => ({ data: Float32Array.from(t.data, (v) => v * w), shape: t.shape });
  return scales.map((s, i) => ({
    activation: times(s.activation, weights[i] as number),
    gradient: times(s.gradient, weights[i] as number),
  }));
}

/**
 * A method of the bench's own (the explainer takes method objects): one pass per scale for the given class, then every
 * variant fused from those passes into `last`; it returns the paper's fused map, which `explain` post-processes.
 */
function variantsMethod(last: { variants?: Variants }): SaliencyMethod<object> {
  return {
    name: 'cameras-variants',
    summary: "CAMERAS' fusion of the same passes several ways (bench only)",
    needs: ['layer-gradient'],
    options: [],
    multiResolution: true,
    async compute(context, input, options) {
      const resolutions = context.resolutions;
      const cls = options.classIndex as number;
      const size = resolutions[0] as number;
      const scales: FusionScale[] = [];
      const correct: boolean[] = [];
      const probability: number[] = [];
      for (const r of resolutions) {
        const pass = await context.layer.run(resizeInput(input, r), cls, options.target);
        scales.push(layerTensors(pass, 'CAMERAS'));
        const logits = Array.from(pass.output.data);
        correct.push(logits.indexOf(Math.max(...logits)) === cls);
        probability.push(softmax(logits)[cls] as number);
      }
      const maps = new Map<string, Float32Array>();
      const fuse = async (name: string, kept: FusionScale[]) => {
        const sums = await context.fuseSums(kept, size);
        maps.set(name, normaliseFused(sums, kept.length, size).map);
        return sums;
      };
      // The last prefix fused is every scale: the paper's map, returned below.
      let all = await fuse(String(resolutions[0]), scales.slice(0, 1));
      for (let s = 1; s < resolutions.length; s++) {
        const r = resolutions[s] as number;
        await fuse(String(r), [scales[s] as FusionScale]);
        all = await fuse(`upTo${r}`, scales.slice(0, s + 1));
      }
      await fuse('probabilityWeighted', weighted(scales, probability));
      // No oracle map where the model is right at no scale.
      const right = scales.filter((_, s) => correct[s]);
      if (right.length) await fuse('correctOnly', right);
      last.variants = { correct, maps };
      return {
        raw: fusedRaw(all, scales.length, size),
        height: size,
        width: size,
        usedResolutions: [...resolutions],
      };
    },
    postprocess: cameras.postprocess,
  };
}

const models = process.argv.slice(2);
const items = await loadDataset(resolve(BENCH, 'composite'));
for (const model of models.length ? models : ['composite:fashion', 'composite:fashion-single-scale']) {
  // The benchmark's classes, for a model file named on the command line as for the zoo's.
  const explainer = await createExplainer({ model, threads: 2, profile: { labels: zooEntry('composite:fashion')?.labels } });
  const scales = explainer.profile.resolutions;
  const labels = explainer.profile.labels as readonly string[];
  const correct = new Map<number, number>(scales.map((s) => [s, 0]));
  const hits = new Map<string, number>();
  const count = (key: string, hit: boolean) => hits.set(key, (hits.get(key) ?? 0) + (hit ? 1 : 0));
  const last: { variants?: Variants } = {};
  const method = variantsMethod(last);
  let rightSomewhere = 0;
  let keptTop1 = 0;
  let n = 0;
  for (const item of items) {
    const object = item.annotation.objects[0];
    if (!object) continue;
    const cls = labels.indexOf(object.className);
    const mask = classMask(item.annotation, object.className);
    if (!mask) continue;
    const x = explainer.preprocess(await readImage(item.image));
    const { width, height } = item.annotation;
    const hit = (map: ArrayLike<number>, side: number) => pointingHit(mask, pointOf(map, side, side, height, width)) === 1;
    const fused = await explainer.explain(x, { method, classIndex: cls });
    count('fused', hit(fused.map, fused.height));
    const { variants } = last as { variants: Variants };
    variants.correct.forEach((right, s) => {
      if (right) correct.set(scales[s] as number, (correct.get(scales[s] as number) as number) + 1);
    });
    for (const key of ['probabilityWeighted', ...scales.map(String), ...scales.slice(1).map((r) => `upTo${r}`)])
      count(key, hit(variants.maps.get(key) as Float32Array, fused.height));
    // The oracle has a map only where the model is right at some scale: scored over those images, beside the
    // paper's fusion on the same images.
    const oracle = variants.maps.get('correctOnly');
    if (oracle) {
      rightSomewhere++;
      count('correctOnly', hit(oracle, fused.height));
      count('fusedWhereRightSomewhere', hit(fused.map, fused.height));
    }
    // A separate run: the model's top-1 class at the first scale, and only the scales that agree with it.
    const top1 = await explainer.explain(x, {});
    count('fusedTop1', hit(top1.map, top1.height));
    keptTop1 += top1.usedResolutions?.length ?? 0;
    n++;
  }
  process.stdout.write(
    `${JSON.stringify({
      model,
      images: n,
      accuracy: Object.fromEntries([...correct].map(([s, c]) => [s, c / n])),
      pointing: Object.fromEntries(
        [...hits].map(([k, h]) => [k, h / (k === 'correctOnly' || k === 'fusedWhereRightSomewhere' ? rightSomewhere : n)]),
      ),
      rightAtSomeScale: rightSomewhere / n,
      scalesKeptTop1: keptTop1 / n,
    })}\n`,
  );
  await explainer.dispose();
}
