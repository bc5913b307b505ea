import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DEFAULT_RESOLUTIONS } from '../engine/scales.js';
import { CamerasError } from '../errors.js';
import { Explainer } from '../explainer.js';
import { presetByName } from '../io/preprocess.js';
import { bytesIdentity, fileIdentity, sessionCacheFor } from '../models/session-cache-node.js';
import { classByName, resolutionsFor, type ZooEntry } from '../models/zoo.js';
import { imagenetLabels, resolveModel } from '../models/zoo-node.js';

export interface LoadedModel {
  spec: string;
  entry?: ZooEntry;
  /** Class names: the zoo entry's, or ImageNet's assumed for a plain 1000-class model. */
  labels?: readonly string[];
  labelsAssumed?: boolean;
  explainer: Explainer;
  resolutions: number[];
  preset: ReturnType<typeof presetByName>;
  size: number;
}

/**
 * A model by zoo name, path or URL with its explainer built: its preprocessing, input size, labels and default
 * resolutions, which every command starts from.
 */
export async function loadModel(
  spec: string,
  options: { weights?: string; layer?: string; threads?: number; preprocess?: string; resolutions?: number[] } = {},
): Promise<LoadedModel> {
  const model = await resolveModel(spec, options.weights);
  const preset = presetByName(options.preprocess ?? model.entry?.preprocess ?? 'torchvision');
  const size = model.entry?.inputSize ?? preset.size;
  // Optimised sessions are cached by the model's identity: its file (path, size, time), else its bytes' hash.
  const identity = options.weights
    ? `${spec}:${await fileIdentity(resolve(options.weights))}`
    : ((await fileIdentity(resolve(spec))) ?? bytesIdentity(model.bytes));
  const explainer = await Explainer.create(ort, {
    model: model.bytes,
    layer: options.layer ?? (model.entry?.layer || undefined),
    threads: options.threads,
    source: model.source,
    sessionCache: sessionCacheFor(identity),
  });
  return {
    spec,
    entry: model.entry,
    ...(await labelsFor(model.entry, explainer, size)),
    explainer,
    preset,
    size,
    resolutions: options.resolutions ?? (model.entry ? resolutionsFor(model.entry.inputSize) : [...DEFAULT_RESOLUTIONS]),
  };
}

/** A zoo model's labels; for a plain model with 1000 outputs, ImageNet's, said to be assumed. */
export async function labelsFor(
  entry: ZooEntry | undefined,
  explainer: Explainer,
  size: number,
): Promise<{ labels?: readonly string[]; labelsAssumed?: boolean }> {
  if (entry?.labels.length) return { labels: entry.labels };
  // A model that does not declare its class count tells it on one small forward pass.
  const channels = explainer.inputChannels ?? 3;
  const classes =
    explainer.classCount ??
    (await explainer
      .logits({ data: new Float32Array(channels * size * size), shape: [1, channels, size, size] })
      .then((logits) => logits.length)
      .catch(() => 0));
  if (classes === 1000) return { labels: await imagenetLabels(), labelsAssumed: !entry };
  return {};
}

export function classIndex(value: string, model: LoadedModel): number {
  const found = classByName(value, model.labels);
  if (found === undefined) {
    const labels = model.labels
      ? model.labels.length > 20
        ? ` or a label of ${model.labelsAssumed ? 'ImageNet (assumed for this 1000-class model)' : 'the model'} ('cameras models' lists where they come from)`
        : ` or one of: ${model.labels.join(', ')}`
      : ' (this model has no labels)';
    throw new CamerasError(`unknown class '${value}'; give an index${labels}`);
  }
  return found;
}
