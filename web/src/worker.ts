// The page's engine: the library's isomorphic core on ONNX Runtime Web, off the main thread.
import * as ort from 'onnxruntime-web/webgpu';
import { Explainer, type ExplainOptions, methodByName, resizeLinearUint8, softmax, topK, ZOO, zooProfile } from '../../src/core.ts';
import type { FromWorker, ListedDetection, ModelInfo, ModelSpec, ToWorker } from './protocol.ts';

/** The class most pixels of a [1, K, H, W] output are predicted as, class 0 (the background) aside where others occur. */
function dominantClass(scores: Float32Array, classes: number): number {
  const positions = scores.length / classes;
  const counts = new Array<number>(classes).fill(0);
  for (let p = 0; p < positions; p++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if ((scores[k * positions + p] as number) > (scores[best * positions + p] as number)) best = k;
    counts[best] = (counts[best] as number) + 1;
  }
  let chosen = classes > 1 ? 1 : 0;
  for (let k = 1; k < classes; k++) if ((counts[k] as number) > (counts[chosen] as number)) chosen = k;
  return (counts[chosen] as number) > 0 ? chosen : 0;
}

/** The parts of a dedicated worker's global scope used here (the DOM library types the page, not the worker). */
interface WorkerScope {
  name: string;
  crossOriginIsolated: boolean;
  navigator: Navigator;
  postMessage(message: unknown, transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

// The bundler emits the runtime's wasm file beside the worker; threads need cross-origin isolation (COOP + COEP).
ort.env.wasm.numThreads = scope.crossOriginIsolated ? Math.max(1, Math.min(4, scope.navigator.hardwareConcurrency || 1)) : 1;

let explainer: Explainer | undefined;
let info: ModelInfo | undefined;

const post = (message: FromWorker, transfer: Transferable[] = []) => scope.postMessage(message, transfer);

async function webgpuAvailable(): Promise<boolean> {
  const gpu = (scope.navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

async function load(spec: ModelSpec): Promise<void> {
  const started = performance.now();
  let bytes = spec.bytes;
  if (!bytes) {
    const response = await fetch(spec.url as string).catch((error: Error) => {
      throw new Error(`cannot fetch ${spec.url}: ${error.message}`);
    });
    if (!response.ok) throw new Error(`cannot fetch ${spec.url}: HTTP ${response.status}`);
    bytes = await response.arrayBuffer();
  }
  const entry = ZOO.find((e) => e.name === spec.name);
  const gpu = await webgpuAvailable();
  // The old model goes first, so a failed load leaves no half-described one behind.
  const old = explainer;
  explainer = undefined;
  info = undefined;
  await old?.dispose();
  explainer = await Explainer.create(ort as never, {
    model: new Uint8Array(bytes),
    // What the model is comes from the core: the zoo's profile for a bundled model, inferred from the graph otherwise.
    ...(entry ? { profile: zooProfile(entry) } : {}),
    source: spec.name,
    // WebGPU's MaxPool kernels have no Indices output: back-propagate MaxPool by comparisons there.
    maxPoolIndices: !gpu,
    sessionOptions: { executionProviders: gpu ? ['webgpu', 'wasm'] : ['wasm'] },
  });
  const { profile } = explainer;
  const output = profile.outputs.find((o) => o.name === profile.output);
  const kind = (await explainer.detector()) ? 'detector' : output?.shape?.length === 4 ? 'segmenter' : 'classifier';
  info = {
    kind,
    name: spec.name,
    ...(profile.labels ? { labels: [...profile.labels] } : {}),
    inputSize: profile.inputSize,
    preprocess: profile.preprocess,
    layer: explainer.layer.name,
    resolutions: [...profile.resolutions],
    backend: gpu ? 'webgpu' : `wasm, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads === 1 ? '' : 's'}`,
    seconds: (performance.now() - started) / 1000,
  };
  post({ type: 'loaded', info });
}

// ONNX Runtime's wasm threads start this same script as their workers (named 'em-pthread'); only the page's
// worker takes our messages, the threads keep the runtime's own handler.
if (scope.name !== 'em-pthread')
  scope.onmessage = async (event: MessageEvent<ToWorker>) => {
    const message = event.data;
    try {
      if (message.type === 'load') return await load(message.model);
      if (!explainer || !info) throw new Error('no model is loaded yet');
      const tensor = explainer.preprocess(message.image);
      const logits = await explainer.logits(tensor);
      // The five most likely classes, for a classifier (a dense output's values are not one row of classes).
      const classifier = info.kind === 'classifier' && logits.length === explainer.classCount;
      const probabilities = softmax(logits);
      const top = classifier
        ? topK(logits, Math.min(5, logits.length)).map((index) => ({ index, probability: probabilities[index] as number }))
        : [];
      let target = message.target;
      let detections: ListedDetection[] | undefined;
      let detection: number | undefined;
      if (info.kind === 'detector') {
        // The detections in the image's pixels; the chosen one (default the best) is the target of every method.
        const found = await explainer.detect(tensor);
        const sx = message.image.width / info.inputSize;
        const sy = message.image.height / info.inputSize;
        detections = found.map((d) => ({
          box: [d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy],
          label: d.label,
          score: d.score,
        }));
        detection = message.detection ?? 0;
        const chosen = found[detection];
        if (!chosen)
          throw new Error(
            found.length ? `there is no detection ${detection}` : 'the detector finds nothing above score 0.25 in this image',
          );
        target = await explainer.detectionTarget(chosen, { width: info.inputSize, height: info.inputSize });
      } else if (info.kind === 'segmenter' && typeof target !== 'object') {
        // A segmenter explains a region: the chosen class's predicted pixels, by default the largest class but the first.
        target = { segment: message.classIndex ?? dominantClass(logits, explainer.classCount ?? info.labels?.length ?? 1) };
      }
      const results = [];
      for (const method of message.methods) {
        const started = performance.now();
        const options: ExplainOptions = {
          method,
          classIndex: info.kind === 'classifier' ? message.classIndex : null,
          target,
          onProgress: (done: number, total: number) => post({ type: 'progress', method, done, total }),
          // The resolutions field and each scale's map go to the methods that run at several resolutions.
          ...(methodByName(method).multiResolution ? { resolutions: message.resolutions, perScale: true } : {}),
        };
        const result = await explainer.explain(tensor, options);
        results.push({
          method,
          target: result.target,
          map: Float32Array.from(result.map),
          width: result.width,
          height: result.height,
          ...(result.classIndex !== undefined ? { classIndex: result.classIndex } : {}),
          ...(result.classProbability !== undefined ? { probability: result.classProbability } : {}),
          ...(result.classPerResolution ? { classPerResolution: result.classPerResolution } : {}),
          ...(result.scaleMaps
            ? {
                scaleMaps: result.scaleMaps.map((s) => ({
                  resolution: s.resolution,
                  map: Float32Array.from(s.map.map),
                  width: s.map.width,
                  height: s.map.height,
                })),
              }
            : {}),
          seconds: (performance.now() - started) / 1000,
        });
      }
      post({
        type: 'result',
        results,
        top,
        input: resizeLinearUint8(message.image, info.inputSize, info.inputSize),
        ...(detections ? { detections, detection } : {}),
      });
    } catch (error) {
      post({ type: 'error', message: (error as Error).message.split('\n')[0] ?? String(error) });
    }
  };
