import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { type FloatArray, parseNpy } from '../src/io/npy.js';
import { buildGradientGraph, type GradientGraphOptions } from '../src/onnx/autodiff.js';

/** The repository root (tests run from dist/test). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = resolve(ROOT, 'test/fixtures');
/** The read-only shared folder beside the checkout, when present. */
export const SHARED = resolve(ROOT, '../shared');
export const SHARED_REFERENCE = resolve(SHARED, 'fixtures/reference');
export const hasShared = existsSync(resolve(SHARED_REFERENCE, 'resnet18/cases.json'));

export function npy(path: string): FloatArray {
  return parseNpy(new Uint8Array(readFileSync(path)), path);
}

export function bytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

/** max |a - b| and the largest |b|, for relative checks; NaN anywhere counts as a difference. */
export function difference(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; mean: number; scale: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0;
  let sum = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    const v = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    max = Math.max(max, v);
    sum += v;
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return { max, mean: sum / Math.max(a.length, 1), scale };
}

export interface GradientRun {
  logits: ort.Tensor;
  activations: (ort.Tensor | undefined)[];
  gradients: ort.Tensor[];
}

/** Builds the gradient graph of `model` and runs it once on `input` with `seed`. */
export async function runGradient(
  model: Uint8Array,
  options: GradientGraphOptions,
  input: FloatArray,
  seed: Float32Array,
  seedShape: number[],
  level: 'all' | 'disabled' = 'all',
): Promise<GradientRun> {
  const graph = buildGradientGraph(model, options);
  const session = await ort.InferenceSession.create(graph.bytes, { graphOptimizationLevel: level });
  try {
    const out = await session.run({
      [graph.input]: new ort.Tensor('float32', input.data, input.shape),
      [graph.seed]: new ort.Tensor('float32', seed, seedShape),
    });
    return {
      logits: out[graph.output] as ort.Tensor,
      activations: graph.targets.map((t) => (t.activation ? (out[t.activation] as ort.Tensor) : undefined)),
      gradients: graph.targets.map((t) => out[t.gradient] as ort.Tensor),
    };
  } finally {
    await session.release();
  }
}

export function oneHot(length: number, index: number): Float32Array {
  const seed = new Float32Array(length);
  seed[index] = 1;
  return seed;
}

/**
 * What pytorch-grad-cam makes of a raw map, without its resize: ReLU, then `scale_cam_image` (minus the minimum,
 * over 1e-7 plus the maximum) once per layer and once more after averaging the layers. The 1e-7 matters on
 * transformers, whose raw maps can be 1e-3 small; the second pass takes most of it back out.
 */
export function scaleCam(raw: ArrayLike<number>): Float64Array {
  const scale = (cam: Float64Array) => {
    const low = Math.min(...cam);
    const shifted = cam.map((v) => v - low);
    const high = Math.max(...shifted);
    return shifted.map((v) => v / (1e-7 + high));
  };
  return scale(scale(Float64Array.from(raw, (v) => Math.max(v, 0))));
}
