import { camMethod } from './base-cam.js';

/**
 * Which way EigenCAM's singular vector points: `numpy` as numpy.linalg.svd (LAPACK's dgesdd) returns it, so
 * maps equal pytorch-grad-cam's; `activation` so the projection correlates positively with the mean
 * activation map (the heat sits where the layer fires, independent of LAPACK's arithmetic).
 */
export type EigenSign = 'numpy' | 'activation';

export interface EigenCamOptions {
  /** Default: `numpy` at one scale, `activation` with `multiScale` (the scales must agree in sign). */
  eigenSign?: EigenSign;
}

/**
 * EigenCAM's projection (Muhammad and Yeasin 2020, as pytorch-grad-cam computes it): L = X v_1, with X the
 * activations as `[positions, channels]` centred per channel (in float32, as numpy does) and v_1 their first
 * right singular vector (power iteration), given the sign `orientation` asks for. numpy's sign comes from an
 * isolated compatibility module (`src/compat/numpy-svd/`), loaded only when asked for.
 */
export async function eigenProjection(
  activation: Float32Array,
  channels: number,
  plane: number,
  orientation: EigenSign = 'numpy',
): Promise<Float64Array> {
  const x = new Float64Array(plane * channels);
  const meanMap = new Float64Array(plane);
  // pytorch-grad-cam zeroes NaN activations first.
  const value = (c: number, p: number) => {
    const v = activation[c * plane + p] as number;
    return Number.isNaN(v) ? 0 : v;
  };
  for (let c = 0; c < channels; c++) {
    let mean = 0;
    for (let p = 0; p < plane; p++) mean += value(c, p);
    mean = Math.fround(mean / plane);
    for (let p = 0; p < plane; p++) {
      x[p * channels + c] = Math.fround(value(c, p) - mean);
      meanMap[p] = (meanMap[p] as number) + value(c, p) / channels;
    }
  }
  const project = (v: Float64Array) => {
    const u = new Float64Array(plane);
    for (let p = 0; p < plane; p++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += (x[p * channels + c] as number) * (v[c] as number);
      u[p] = s;
    }
    return u;
  };
  let v = Float64Array.from({ length: channels }, (_, i) => Math.sin(i + 1));
  for (let iteration = 0; iteration < 300; iteration++) {
    const u = project(v);
    const next = new Float64Array(channels);
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < channels; c++) next[c] = (next[c] as number) + (x[p * channels + c] as number) * (u[p] as number);
    const norm = Math.hypot(...next) || 1;
    const previous = v;
    v = next.map((t) => t / norm);
    let change = 0;
    for (let c = 0; c < channels; c++) change = Math.max(change, Math.abs((v[c] as number) - (previous[c] as number)));
    if (change < 1e-12) break;
  }
  const projection = project(v);
  if (orientation === 'numpy') {
    let norm = 0;
    for (const t of projection) norm = Math.hypot(norm, t);
    if (norm === 0) return projection;
    const { lapackSign } = await import('../compat/numpy-svd/lapack-sign.js');
    const unit = projection.map((t) => t / norm);
    return lapackSign(x, plane, channels, unit) === 1 ? projection : projection.map((t) => -t);
  }
  let correlation = 0;
  for (let p = 0; p < plane; p++) correlation += (projection[p] as number) * (meanMap[p] as number);
  return correlation < 0 ? projection.map((t) => -t) : projection;
}

/** EigenCAM: the activations' first principal component; uses no gradient (the pass computes one anyway). */
export const eigencam = camMethod<EigenCamOptions>({
  name: 'eigencam',
  summary: "EigenCAM: projection on the activations' first singular vector; numpy's sign at one scale (pytorch-grad-cam)",
  options: ['eigenSign'],
  map: ({ activation, channels, plane }, options) =>
    eigenProjection(activation, channels, plane, options.eigenSign ?? (options.multiScale ? 'activation' : 'numpy')),
});
