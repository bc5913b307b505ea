import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseBoxTarget } from '../engine/detections.js';
import { type InputSize, parseTarget, type Target } from '../engine/scores.js';
import { CamerasError } from '../errors.js';
import { Explainer, type ExplainerConfig } from '../explainer.js';
import { readMask } from '../io/image-node.js';
import type { FloatArray } from '../io/npy.js';
import { outlineModel } from '../onnx/outline.js';
import { mergeProfiles, type ProfileOverrides, zooProfile } from './profile.js';
import { bytesIdentity, fileIdentity, modelFileIdentity, outlineStoreFor, sessionCacheFor } from './session-cache-node.js';
import { classByName, type ZooEntry, zooEntry } from './zoo.js';
import { imagenetLabels, modelFile, resolveModel, withDataBeside } from './zoo-node.js';

/** How `openExplainer` opens a model: the explainer's settings, a torchvision model's weights, profile overrides. */
export type OpenOptions = Omit<ExplainerConfig, 'model' | 'source' | 'loadModel'> & {
  /** The state dict of a `torchvision:<arch>` model. */
  weights?: string;
};

/**
 * An explainer for a model by zoo name, path, URL or bytes, with its profile (a zoo model's declared, else inferred
 * from the graph; `profile` and `layer` override either), ImageNet's labels assumed for a plain 1000-class model, and
 * ONNX Runtime's optimised sessions cached between processes. A model file is read once to build its sessions; after
 * that only its outline is held (and, once cached, only the outline is read), so a large model's weights are held
 * once, by ONNX Runtime. Every Node entry point (the library's `createExplainer`, the CLI, the jobs) opens models here.
 */
export async function openExplainer(spec: string | Uint8Array, options: OpenOptions = {}): Promise<Explainer> {
  const { weights, profile, ...rest } = options;
  if (typeof spec !== 'string' && weights)
    throw new CamerasError("'weights' build a torchvision:<arch> model; the model given as bytes does not take them");
  const name = typeof spec === 'string' ? spec : 'model';
  const file = weights || typeof spec !== 'string' ? undefined : await modelFile(spec);
  // Optimised sessions are cached by the model's identity: its file (path, size, time), or the weights' file for a
  // built torchvision model, else its bytes' hash.
  const weightsId = weights ? await fileIdentity(resolve(weights)) : undefined;
  const fileId = weightsId ? `${spec}:${weightsId}` : file ? await modelFileIdentity(file) : undefined;
  // A model read again from its file or built again from its weights needs only its outline kept, and once cached
  // only the outline is read: VGG-16's 553 MB of weights are then held once, by ONNX Runtime.
  const again =
    typeof spec !== 'string' || !fileId
      ? undefined
      : weights
        ? () => buildModelAgain(spec, weights, weightsId)
        : file
          ? () => readModelFileAgain(file, fileId)
          : undefined;
  const outlines = again && fileId ? outlineStoreFor(fileId) : undefined;
  const outline = await outlines?.read();
  const model =
    typeof spec !== 'string'
      ? { bytes: spec, entry: undefined, source: name }
      : outline
        ? { bytes: outline, entry: await labelledEntry(spec), source: spec }
        : await resolveModel(spec, weights);
  const explainer = await Explainer.create(ort, {
    ...rest,
    model: model.bytes,
    profile: declaredProfile(name, model.entry, profile),
    source: model.source,
    sessionCache: rest.sessionCache ?? sessionCacheFor(fileId ?? bytesIdentity(model.bytes)),
    memoryBudget: rest.memoryBudget ?? memoryBudget(),
    // A classifier with 1000 classes and no labels of its own is taken to be ImageNet's, and says so.
    assumeLabels: async (classes) => (classes === 1000 ? imagenetLabels() : undefined),
    ...(again ? { loadModel: again } : {}),
  });
  if (outlines && !outline) await outlines.keep(outlineModel(model.bytes)).catch(() => undefined);
  return explainer;
}

/** A zoo entry as `resolveModel` gives it: a torchvision architecture with ImageNet's labels. */
async function labelledEntry(spec: string): Promise<ZooEntry | undefined> {
  const entry = zooEntry(spec);
  return entry?.needsWeights ? { ...entry, labels: await imagenetLabels() } : entry;
}

/** Builds a torchvision model from its weights again, for a session the cache lacks; refused when they changed. */
async function buildModelAgain(spec: string, weights: string, identity: string | undefined): Promise<Uint8Array> {
  const changed = () => fileIdentity(resolve(weights)).then((now) => now !== identity);
  const message = `${weights} changed after the model was built; load the model again (start the command or worker again)`;
  if (await changed()) throw new CamerasError(message);
  const { bytes } = await resolveModel(spec, weights);
  if (await changed()) throw new CamerasError(message);
  return bytes;
}

/** Bytes a run may take: $CAMERAS_MEMORY_BUDGET GB where set, else 75% of this machine's memory. */
export function memoryBudget(): number {
  const set = Number(process.env.CAMERAS_MEMORY_BUDGET);
  return set > 0 ? set * 1e9 : 0.75 * totalmem();
}

/** What is declared of a model opened by `spec`: its zoo entry's profile, its name, then the caller's overrides. */
export function declaredProfile(spec: string, entry: ZooEntry | undefined, overrides?: ProfileOverrides): ProfileOverrides {
  return mergeProfiles(entry ? zooProfile(entry) : undefined, { name: spec }, overrides);
}

/**
 * Reads a model file again for a session the cache lacks: refused when the file has changed since the explainer
 * was made, or its sessions would come from two different models.
 */
async function readModelFileAgain(file: string, identity: string | undefined): Promise<Uint8Array> {
  const changed = () => modelFileIdentity(file).then((now) => now !== identity);
  const message = `${file} changed after it was loaded; load the model again (start the command or worker again)`;
  if (await changed()) throw new CamerasError(message);
  const bytes = await readModelFile(file);
  if (await changed()) throw new CamerasError(message);
  return bytes;
}

/**
 * Reads a model file, and the external data files it keeps its weights in (beside it, as exporters write them: read
 * into the model); a missing or unreadable file fails with one line.
 */
export async function readModelFile(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CamerasError(
      `cannot read model ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`,
    );
  }
  return withDataBeside(path, bytes);
}

/** A class by index or by one of the profile's labels; an unknown one fails naming what would do. */
export function classIndex(value: string, profile: Pick<ProfileOverrides, 'labels' | 'labelsAssumed'>): number {
  const found = classByName(value, profile.labels);
  if (found === undefined) {
    const labels = profile.labels
      ? profile.labels.length > 20
        ? ` or a label of ${profile.labelsAssumed ? 'ImageNet (assumed for this 1000-class model)' : 'the model'} ('cameras models' lists where they come from)`
        : ` or one of: ${profile.labels.join(', ')}`
      : ' (this model has no labels)';
    throw new CamerasError(`unknown class '${value}'; give an index${labels}`);
  }
  return found;
}

/**
 * A target as the CLI and the jobs spell it: the core's forms (`logit`, `prob`, `logprob`, `contrast:<class>`,
 * `segment:<class>`), a class by index or by the model's labels, and a region's mask read from a picture
 * (`segment:<class>:<mask.png>`: its non-zero pixels, any size, resized to the output's at each scale).
 */
export async function targetOf(text: string, explainer: Explainer, input?: { tensor: FloatArray; image?: InputSize }): Promise<Target> {
  const toIndex = (label: string) => classIndex(label, explainer.profile);
  const box = parseBoxTarget(text, toIndex);
  if (box) {
    if (!input) throw new CamerasError(`--target ${text} names a box in an image's pixels: it needs the image`);
    return (await explainer.boxTarget(box, input.tensor, input.image)).target;
  }
  const region = regionWithMask(text);
  if (region) return { segment: toIndex(region.segment), mask: await readMask(region.mask) };
  return parseTarget(text, toIndex);
}

/** `segment:<class>:<mask>` split into the class (index or label) and the mask's path; undefined for any other form. */
export function regionWithMask(text: string): { segment: string; mask: string } | undefined {
  const match = /^segment:([^:]+):(.+)$/.exec(text);
  return match ? { segment: match[1] as string, mask: match[2] as string } : undefined;
}
