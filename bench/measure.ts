/**
 * One benchmark task in its own process (so peak RSS is the task's own), printing one JSON line:
 *   node dist/bench/measure.js <task> <model.onnx> <input.npy> <runs>
 * Tasks: forward-sum, cameras, gradcam, input-gradient, throughput, insdel, pgd-step.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pgd } from '../src/attacks/pgd.js';
import { resizeBicubic } from '../src/engine/resize.js';
import { DEFAULT_RESOLUTIONS } from '../src/engine/scales.js';
import { Explainer } from '../src/explainer.js';
import { readImage } from '../src/io/image-node.js';
import { formatNpy, parseNpy } from '../src/io/npy.js';
import { normalise, PRESETS, resizeLinearUint8 } from '../src/io/preprocess.js';
import { causalMetric } from '../src/metrics/insertion-deletion.js';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { resamplePositionEmbeddings } from '../src/onnx/position-embedding.js';

const [task, modelPath, inputPath, runsText] = process.argv.slice(2) as [string, string, string, string];
const runs = Number(runsText ?? 3);
const THREADS = 2;
// A ViT's plain forward passes at other sizes need its position embedding resampled, as CAMERAS' graphs do.
const model = process.env.CAMERAS_BENCH_RESAMPLE
  ? resampled(new Uint8Array(readFileSync(modelPath)))
  : new Uint8Array(readFileSync(modelPath));

function resampled(bytes: Uint8Array): Uint8Array {
  const graph = OnnxGraph.fromBytes(bytes);
  resamplePositionEmbeddings(graph);
  return graph.toBytes();
}
const input = inputPath.endsWith('.npy')
  ? parseNpy(new Uint8Array(readFileSync(inputPath)))
  : { data: new Float32Array(3 * 224 * 224), shape: [1, 3, 224, 224] };
// Other architectures (bench/archs.ts) name their layer and scales: CAMERAS_BENCH_LAYER, CAMERAS_BENCH_RESOLUTIONS.
const LAYER = process.env.CAMERAS_BENCH_LAYER ?? 'layer4';
const RESOLUTIONS = process.env.CAMERAS_BENCH_RESOLUTIONS?.split(',').map(Number) ?? [...DEFAULT_RESOLUTIONS];
const scaled = RESOLUTIONS.map((r) =>
  r === input.shape[2] ? input : { data: resizeBicubic(input.data, input.shape, r, r), shape: [1, 3, r, r] },
);
const sessionOptions = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: THREADS, interOpNumThreads: 1 };

async function timed(f: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await f();
  return (performance.now() - start) / 1000;
}

async function repeat(f: () => Promise<unknown>, count = runs): Promise<number[]> {
  await f(); // warm: sessions built, arenas grown
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await timed(f));
  return times;
}

const result: Record<string, unknown> = { task };
if (task === 'forward-sum') {
  const session = await ort.InferenceSession.create(model, sessionOptions);
  result.times = await repeat(async () => {
    for (const x of scaled) await session.run({ input: new ort.Tensor('float32', x.data, x.shape) });
  });
} else if (task === 'cameras') {
  const explainer = await Explainer.create(ort, { model, layer: LAYER, threads: THREADS });
  result.times = await repeat(() => explainer.explain(input, { classIndex: 243, resolutions: RESOLUTIONS }));
} else if (task === 'gradcam') {
  const explainer = await Explainer.create(ort, { model, layer: LAYER, threads: THREADS });
  result.times = await repeat(() => explainer.explain(input, { method: 'gradcam', classIndex: 243 }), runs * 3);
} else if (task === 'input-gradient') {
  const plain = await ort.InferenceSession.create(model, sessionOptions);
  const graph = buildGradientGraph(model, { targets: ['input'] });
  const backward = await ort.InferenceSession.create(graph.bytes, sessionOptions);
  const seed = new Float32Array(1000);
  seed[243] = 1;
  const feeds = { input: new ort.Tensor('float32', input.data, input.shape) };
  result.forward = await repeat(() => plain.run(feeds), runs * 3);
  result.times = await repeat(() => backward.run({ ...feeds, [graph.seed]: new ort.Tensor('float32', seed, [1, 1000]) }), runs * 3);
} else if (task === 'throughput') {
  const explainer = await Explainer.create(ort, { model, layer: 'layer4', threads: THREADS });
  const images = Array.from({ length: 32 }, (_, i) => ({ data: input.data.map((v, j) => v + 0.01 * Math.sin(i + j)), shape: input.shape }));
  await explainer.explain(input, {});
  result.times = [await timed(() => explainer.explainBatch(images, {}))];
  result.batched = [await timed(() => explainer.explainBatch(images, { batch: true }))];
} else if (task === 'insdel') {
  // RISE's insertion and deletion of one 224 px image (2 x 225 forward passes, batched), map from Grad-CAM.
  const explainer = await Explainer.create(ort, { model, layer: 'layer4', threads: THREADS });
  const map = (await explainer.explain(input, { method: 'gradcam', classIndex: 243 })).map;
  // The same map for the Python reference's timing (bench/rise_insdel.py).
  result.mapPath = join(tmpdir(), 'cameras-bench-insdel-map.npy');
  writeFileSync(result.mapPath as string, formatNpy({ data: Float32Array.from(map), shape: [224, 224] }));
  const forward = (inputs: { data: Float32Array; shape: number[] }[]) => explainer.forward(inputs);
  result.forward = await repeat(() => forward([input]), runs * 3);
  result.times = await repeat(async () => {
    await causalMetric(forward, input, map, 'deletion', { classIndex: 243 });
    await causalMetric(forward, input, map, 'insertion', { classIndex: 243 });
  }, 1);
} else if (task === 'pgd-step') {
  // The saliency-guided attack's steps (one forward and backward pass of -cross-entropy each, the penalty, the
  // projection) against one forward pass; the input argument is a photo here (nsfwjs models take /255 pixels).
  const explainer = await Explainer.create(ort, { model, threads: THREADS });
  const preset = PRESETS.unit as (typeof PRESETS)[string];
  const image = resizeLinearUint8(await readImage(inputPath), 224, 224);
  const tensor = normalise(image, preset);
  result.forward = await repeat(() => explainer.forward([tensor]), runs * 5);
  const steps = 20;
  const saliency = new Float64Array(224 * 224).fill(0.5);
  result.steps = steps;
  result.times = await repeat(() => pgd(explainer, image, preset, { iterations: steps, confidence: 1, beta: 50, saliency }), runs);
} else {
  throw new Error(`unknown task ${task}`);
}
result.maxRssMiB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(`${JSON.stringify(result)}\n`);
