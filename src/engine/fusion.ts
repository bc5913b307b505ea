import type { InferenceSession } from 'onnxruntime-common';
import type { FloatArray } from '../io/npy.js';
import { OnnxGraph } from '../onnx/graph.js';
import { DataType } from '../onnx/proto.js';
import { bilinearTaps, resizePlaneBilinear, type Taps } from './resize.js';
import { type OrtRuntime, ortSessionOptions, type SessionOptions } from './runtime.js';

export interface FusionScale {
  activation: FloatArray;
  gradient: FloatArray;
}

/**
 * Entries of each side's horizontally resized stack per ONNX Runtime call (16 MB; VGG-16's 8 scales: 27 output
 * columns a call): all the columns at once measured 0.7 GB, and a larger block only grows ONNX Runtime's arena,
 * whose first use (page faults) a one-off CLI run pays in full.
 */
const STACK_BLOCK = 4_000_000;

/** Gram entries per block (20 MB): a layer with more stacked rows than channels (ResNet's maxpool: 1148 x 64) is bounded by these. */
const GRAM_BLOCK = 5_000_000;

/** Output columns per ONNX Runtime call: both the stacks and the Gram block stay within their budgets (at least one column). */
export function fusionColumns(stacked: number, channels: number, size: number): number {
  return Math.max(1, Math.min(size, Math.floor(STACK_BLOCK / (stacked * channels)), Math.floor(GRAM_BLOCK / (stacked * stacked))));
}

function transposeMatrix(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c] as number;
  return t;
}

/** Dense `[inSize, outSize]` matrix of bilinear taps (columns are outputs). */
function tapMatrix(taps: Taps, inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(inSize * outSize);
  for (let o = 0; o < outSize; o++) {
    for (let k = 0; k < taps.taps; k++)
      m[(taps.index[o * taps.taps + k] as number) * outSize + o] += taps.weight[o * taps.taps + k] as number;
  }
  return m;
}

/**
 * CAMERAS' fusion, ReLU(sum_c mean_s(R_s A_s)_c * mean_s(R_s G_s)_c), without ever forming the
 * `C x size x size` resized tensors. With `R_s = V_s (.) H_s^T` separable, stack every scale's
 * horizontally resized rows: `X_c = [A_1c H_1^T; ...; A_nc H_n^T]` (`sum h x size`). Then for output
 * column x the map is `v_y^T M_x v_y` with `M_x = XA(x)^T XG(x)`, a Gram matrix over channels that ONNX
 * Runtime computes as one batched sgemm per block of output columns; the few vertical taps of each row then
 * finish it in JS. Mathematically identical to resizing then multiplying; about 20x faster at ResNet-50's
 * layer4 and its memory stays below 100 MB.
 */
export class FusionEngine {
  private readonly runtime: OrtRuntime;
  private readonly options: Pick<SessionOptions, 'threads' | 'runtimeOptions'>;
  private readonly sessions = new Map<string, Promise<InferenceSession>>();

  /** `options`: the explainer's threads and ONNX Runtime options, as every session of it takes them. */
  constructor(runtime: OrtRuntime, options: Pick<SessionOptions, 'threads' | 'runtimeOptions'> = {}) {
    this.runtime = runtime;
    this.options = options;
  }

  /** The unnormalised fused sum `sum_c (sum_s R_s A_s)_c (sum_s R_s G_s)_c`, row-major size x size. */
  async fuseSums(scales: FusionScale[], size: number): Promise<Float64Array> {
    return fuseConstantGradients(scales, size) ?? this.fuseByGram(scales, size);
  }

  private async fuseByGram(scales: FusionScale[], size: number): Promise<Float64Array> {
    const geometry = scales.map((s) => {
      const [, , h, w] = s.activation.shape as [number, number, number, number];
      return { h, w };
    });
    const channels = scales[0]?.activation.shape[1] as number;
    const stacked = geometry.reduce((sum, g) => sum + g.h, 0);
    const session = await this.session(geometry);
    const { Tensor } = this.runtime;
    // Each scale's horizontal taps as a [size, w] matrix (rows are output columns); a block feeds its rows.
    const horizontal = geometry.map(({ w }) => transposeMatrix(tapMatrix(bilinearTaps(w, size), w, size), w, size));
    // fused(y, x) = sum over the vertical taps k, l of row y of V[y, k] V[y, l] M_x[k, l].
    const perRow = 2 * geometry.length;
    const index = new Int32Array(size * perRow);
    const weight = new Float64Array(size * perRow);
    let offset = 0;
    geometry.forEach((g, s) => {
      const taps = bilinearTaps(g.h, size);
      for (let y = 0; y < size; y++) {
        for (let k = 0; k < 2; k++) {
          index[y * perRow + 2 * s + k] = offset + (taps.index[2 * y + k] as number);
          weight[y * perRow + 2 * s + k] = taps.weight[2 * y + k] as number;
        }
      }
      offset += g.h;
    });
    const fused = new Float64Array(size * size);
    const columns = fusionColumns(stacked, channels, size);
    // The maps as they are, [C * h, w] row-major: the graph's horizontal product reads them transposed.
    const feeds: Record<string, InstanceType<typeof Tensor>> = {};
    scales.forEach((scale, s) => {
      const { h, w } = geometry[s] as { h: number; w: number };
      feeds[`a${s}`] = new Tensor('float32', scale.activation.data, [channels * h, w]);
      feeds[`g${s}`] = new Tensor('float32', scale.gradient.data, [channels * h, w]);
    });
    for (let x0 = 0; x0 < size; x0 += columns) {
      const width = Math.min(columns, size - x0);
      geometry.forEach(({ w }, s) => {
        feeds[`h${s}`] = new Tensor('float32', (horizontal[s] as Float32Array).subarray(x0 * w, (x0 + width) * w), [width, w]);
      });
      const gram = (await session.run(feeds)).gram?.data as Float32Array;
      finishColumns(gram, width, stacked, size, perRow, index, weight, fused, x0);
    }
    return fused;
  }

  private session(geometry: { h: number; w: number }[]): Promise<InferenceSession> {
    const key = geometry.map((g) => `${g.h}x${g.w}`).join(',');
    let session = this.sessions.get(key);
    if (!session) {
      session = this.runtime.InferenceSession.create(buildGramModel(geometry), {
        graphOptimizationLevel: 'all',
        ...ortSessionOptions(this.options),
      });
      this.sessions.set(key, session);
    }
    return session;
  }

  async dispose(): Promise<void> {
    for (const session of this.sessions.values()) await (await session).release();
    this.sessions.clear();
  }
}

/**
 * fused(y, x0 + x) = sum over the vertical taps a, b of row y of V[y, a] V[y, b] M_x[a, b], for a block's `width`
 * columns. A plain function, not part of the async fusion: V8 compiles a hot loop in place only there (inside the
 * async function it ran unoptimised until called several times: DenseNet-121's first fusion 65 -> 24 ms here).
 * Column by column: one column's Gram matrix stays in cache while every row reads it (row by row, each row swept
 * all the columns' matrices, 17 MB for DenseNet-121, from memory: 2.5x slower).
 */
function finishColumns(
  gram: Float32Array,
  width: number,
  stacked: number,
  size: number,
  perRow: number,
  index: Int32Array,
  weight: Float64Array,
  fused: Float64Array,
  x0: number,
): void {
  const block = stacked * stacked;
  for (let x = 0; x < width; x++) {
    const base = x * block;
    for (let y = 0; y < size; y++) {
      const first = y * perRow;
      let sum = 0;
      for (let a = first; a < first + perRow; a++) {
        const row = base + (index[a] as number) * stacked;
        let inner = 0;
        for (let b = first; b < first + perRow; b++) inner += (weight[b] as number) * (gram[row + (index[b] as number)] as number);
        sum += (weight[a] as number) * inner;
      }
      fused[y * size + x0 + x] = sum;
    }
  }
}

/**
 * The per-channel value of each scale's gradient when every gradient plane is constant, as it is when
 * the target feeds global average pooling and a linear head (ResNet's layer4, Inception's Mixed_7c):
 * undefined otherwise.
 */
function constantGradients(scales: FusionScale[]): Float64Array | undefined {
  const channels = scales[0]?.gradient.shape[1] as number;
  const total = new Float64Array(channels);
  for (const { gradient } of scales) {
    const [, , h, w] = gradient.shape as [number, number, number, number];
    const plane = h * w;
    for (let c = 0; c < channels; c++) {
      const first = gradient.data[c * plane] as number;
      for (let p = 1; p < plane; p++) if (gradient.data[c * plane + p] !== first) return undefined;
      total[c] = (total[c] as number) + first;
    }
  }
  return total;
}

/**
 * The fused sum when gradients are constant per channel: resizing a constant plane gives the same
 * constant (the bilinear weights sum to one), so sum_c Abar_c * Gbar_c = sum_s R_s (sum_c gbar_c A_sc):
 * one weighted channel sum per scale and one single-plane resize. Exact, and about C times cheaper.
 */
export function fuseConstantGradients(scales: FusionScale[], size: number): Float64Array | undefined {
  const gbar = constantGradients(scales);
  if (!gbar) return undefined;
  const fused = new Float64Array(size * size);
  scales.forEach(({ activation }, s) => {
    const [, channels, h, w] = activation.shape as [number, number, number, number];
    const plane = h * w;
    const weighted = new Float32Array(plane);
    const sum = new Float64Array(plane);
    for (let c = 0; c < channels; c++) {
      const k = gbar[c] as number;
      if (k === 0) continue;
      for (let p = 0; p < plane; p++) sum[p] = (sum[p] as number) + k * (activation.data[c * plane + p] as number);
    }
    weighted.set(sum);
    resizePlaneBilinear(weighted, h, w, size, size, fused, 1, s > 0);
  });
  return fused;
}

/**
 * gram = XA^T XG per output column for one block of output columns (dynamic: the horizontal taps `h<s>` of the
 * block's columns are inputs). Both sides are laid out [columns, C, sum h] straight from the [C * h, w] maps, and
 * the transposes are written out for ONNX Runtime to fold into its FusedMatMul (no copies: the per-scale
 * transposes of the channel-last layout this replaced took twice the Gram product's time on VGG-16).
 */
function buildGramModel(geometry: { h: number; w: number }[]): Uint8Array {
  const g = OnnxGraph.empty('cameras_fusion');
  const side = (prefix: string) =>
    geometry.map(({ h, w }, s) => {
      const name = `${prefix}${s}`;
      g.addInput(name, DataType.FLOAT, [`rows${s}`, w]);
      const taps = `h${s}`;
      if (prefix === 'a') g.addInput(taps, DataType.FLOAT, ['columns', w]);
      const [columnMajor] = g.addNode('Transpose', [name], { perm: [1, 0] }); // [w, C * h]
      const [wide] = g.addNode('MatMul', [taps, columnMajor as string]); // [columns, C * h]
      return g.addNode('Reshape', [wide as string, g.addConstant('shape', [0, -1, h], [3], 'int64')])[0] as string;
    });
  const [left] = g.addNode('Concat', side('a'), { axis: 2 }); // [columns, C, sum h]
  const [right] = g.addNode('Concat', side('g'), { axis: 2 });
  const [leftT] = g.addNode('Transpose', [left as string], { perm: [0, 2, 1] }); // [columns, sum h, C]
  g.addNode('MatMul', [leftT as string, right as string], {}, { outputs: ['gram'] }); // [columns, sum h, sum h]
  g.addOutput('gram');
  return g.toBytes();
}
