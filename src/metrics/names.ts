import { confidenceMetric } from './confidence-change.js';
import { densityMetric } from './density.js';
import { energyMetric } from './energy.js';
import { insdelMetric } from './insertion-deletion.js';
import type { EvalMetric } from './metric.js';
import { pointingMetric } from './pointing-game.js';
import { roadMetric } from './road.js';

/** Every metric `cameras eval` scores, in the order its summary shows them. Adding a metric: its file, and one line here. */
export const EVAL_METRICS: readonly EvalMetric[] = [
  pointingMetric,
  energyMetric,
  densityMetric,
  insdelMetric,
  confidenceMetric,
  roadMetric,
];

/** The metrics' names, as `--metrics` takes them. */
export const METRICS: readonly string[] = EVAL_METRICS.map((m) => m.name);
/** What `cameras eval` computes unless --metrics says otherwise. */
export const DEFAULT_METRICS: readonly string[] = EVAL_METRICS.filter((m) => m.byDefault).map((m) => m.name);

/** The metric of that name; undefined when none is. */
export function metricByName(name: string): EvalMetric | undefined {
  return EVAL_METRICS.find((m) => m.name === name);
}
