// The page's engine: the library's isomorphic core on ONNX Runtime Web, off the main thread.
import * as ort from 'onnxruntime-web/webgpu';
import { Explainer, type ExplainOptions, methodByName, resizeLinearUint8, softmax, topK, ZOO, zooProfile } from '../../src/core.ts';
import type { FromWorker, ModelInfo, ModelSpec, ToWorker } from './protocol.ts';

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
  info = {
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
      const classifier = logits.length === explainer.classCount;
      const probabilities = softmax(logits);
      const top = classifier
        ? topK(logits, Math.min(5, logits.length)).map((index) => ({ index, probability: probabilities[index] as number }))
        : [];
      const results = [];
      for (const method of message.methods) {
        const started = performance.now();
        const options: ExplainOptions = {
          method,
          classIndex: message.classIndex,
          target: message.target,
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
      post({ type: 'result', results, top, input: resizeLinearUint8(message.image, info.inputSize, info.inputSize) });
    } catch (error) {
      post({ type: 'error', message: (error as Error).message.split('\n')[0] ?? String(error) });
    }
  };
