import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DEFAULT_RESOLUTIONS } from '../engine/scales.js';
import { CamerasError } from '../errors.js';
import { Explainer, type ExplainerConfig } from '../explainer.js';
import { presetByName } from '../io/preprocess.js';
import { bytesIdentity, fileIdentity, outlineStoreFor, sessionCacheFor } from '../models/session-cache-node.js';
import { classByName, resolutionsFor, type ZooEntry, zooEntry } from '../models/zoo.js';
import { imagenetLabels, modelFile, resolveModel } from '../models/zoo-node.js';
import { outlineModel } from '../onnx/outline.js';

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
 * An explainer for a model by zoo name, path or URL, with ONNX Runtime's optimised sessions cached between
 * processes. A model file is read once to build its sessions; after that only its outline is held here (and, once
 * cached, only the outline is read), so a large model's weights are held once, by ONNX Runtime.
 */
export async function openExplainer(
  spec: string,
  config: Omit<ExplainerConfig, 'model' | 'source' | 'loadModel'> & { weights?: string } = {},
): Promise<{ explainer: Explainer; entry?: ZooEntry }> {
  const { weights, ...rest } = config;
  const file = weights ? undefined : await modelFile(spec);
  // Optimised sessions are cached by the model's identity: its file (path, size, time), else its bytes' hash.
  const fileId = weights ? `${spec}:${await fileIdentity(resolve(weights))}` : file ? await fileIdentity(file) : undefined;
  const outlines = file && fileId ? outlineStoreFor(fileId) : undefined;
  const outline = await outlines?.read();
  const model = outline ? { bytes: outline, entry: zooEntry(spec), source: spec } : await resolveModel(spec, weights);
  const explainer = await Explainer.create(ort, {
    ...rest,
    model: model.bytes,
    layer: rest.layer ?? (model.entry?.layer || undefined),
    source: model.source,
    sessionCache: rest.sessionCache ?? sessionCacheFor(fileId ?? bytesIdentity(model.bytes)),
    ...(file ? { loadModel: () => readModelFileAgain(file, fileId) } : {}),
  });
  if (outlines && !outline) await outlines.keep(outlineModel(model.bytes)).catch(() => undefined);
  return { explainer, entry: model.entry };
}

/**
 * Reads a model file again for a session the cache lacks: refused when the file has changed since the explainer
 * was made, or its sessions would come from two different models.
 */
async function readModelFileAgain(file: string, identity: string | undefined): Promise<Uint8Array> {
  const changed = () => fileIdentity(file).then((now) => now !== identity);
  const message = `${file} changed after it was loaded; load the model again (start the command or worker again)`;
  if (await changed()) throw new CamerasError(message);
  const bytes = await readModelFile(file);
  if (await changed()) throw new CamerasError(message);
  return bytes;
}

/** Reads a model file; a missing or unreadable file fails with one line. */
export async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CamerasError(
      `cannot read model ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`,
    );
  }
}

/**
 * A model by zoo name, path or URL with its explainer built: its preprocessing, input size, labels and default
 * resolutions, which every command starts from.
 */
export async function loadModel(
  spec: string,
  options: { weights?: string; layer?: string; threads?: number; preprocess?: string; resolutions?: number[] } = {},
): Promise<LoadedModel> {
  const { explainer, entry } = await openExplainer(spec, { weights: options.weights, layer: options.layer, threads: options.threads });
  const preset = presetByName(options.preprocess ?? entry?.preprocess ?? 'torchvision');
  const size = entry?.inputSize ?? preset.size;
  return {
    spec,
    entry,
    ...(await labelsFor(entry, explainer, size)),
    explainer,
    preset,
    size,
    resolutions: options.resolutions ?? (entry ? resolutionsFor(entry.inputSize) : [...DEFAULT_RESOLUTIONS]),
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
