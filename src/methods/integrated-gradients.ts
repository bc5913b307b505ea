import { minMax, reduceChannels } from '../engine/postprocess.js';
import { frozenRegion, targetScore } from '../engine/scores.js';
import { oneScaleFacts } from './base-cam.js';
import type { SaliencyMethod } from './method.js';
import { checkSamples } from './noise-tunnel.js';

export interface IntegratedGradientsOptions {
  /** Steps of the trapezoid rule (default 64). */
  samples?: number;
}

/**
 * Integrated Gradients (Sundararajan et al. 2017) from the zero baseline of the normalised input:
 * IG(x) = x * integral_0^1 dS/dx(a x) da, by the trapezoid rule over `samples` steps. Completeness says
 * sum IG = S(x) - S(0); the relative gap is reported as `completenessError`.
 */
export const integratedGradients: SaliencyMethod<IntegratedGradientsOptions> = {
  name: 'integrated_gradients',
  summary: 'Integrated Gradients: path integral of input gradients from a black baseline (Sundararajan et al.)',
  needs: ['input-gradient'],
  options: ['samples'],
  async compute(context, input, options) {
    const session = await context.inputGradients();
    const steps = options.samples ?? 64;
    checkSamples(steps);
    const requested = options.classIndex ?? null;
    const first = await session.run(input, requested, options.target);
    const out = oneScaleFacts(input, first.output, requested, options.target);
    const cls = out.classIndex ?? null;
    // Every point of the path is scored by the clean input's region (its prediction, frozen).
    const target = frozenRegion(options.target, first.output);
    const average = new Float64Array(input.data.length);
    for (let k = 0; k <= steps; k++) {
      const alpha = k / steps;
      const pass =
        k === steps ? first : await session.run({ data: Float32Array.from(input.data, (v) => alpha * v), shape: input.shape }, cls, target);
      const g = pass.targets[0]?.gradient.data as Float32Array;
      const w = (k === 0 || k === steps ? 0.5 : 1) / steps;
      for (let i = 0; i < average.length; i++) average[i] = (average[i] as number) + w * (g[i] as number);
      options.onProgress?.(k + 1, steps + 2);
    }
    const attributions = Float64Array.from(average, (g, i) => g * (input.data[i] as number));
    const baseline = await session.run({ data: new Float32Array(input.data.length), shape: input.shape }, cls, target);
    options.onProgress?.(steps + 2, steps + 2);
    const delta = targetScore(first.output, target, cls ?? 0) - targetScore(baseline.output, target, cls ?? 0);
    const total = attributions.reduce((a, b) => a + b, 0);
    const [, channels, height, width] = input.shape as [number, number, number, number];
    return {
      ...out,
      raw: { data: attributions, channels, height, width },
      completenessError: Math.abs(total - delta) / Math.max(Math.abs(delta), 1e-12),
    };
  },
  postprocess: (raw, height, width) => minMax(reduceChannels(raw, 'absSum'), width, height),
};
