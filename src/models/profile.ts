import { type DetectionLayout, detectionLayout } from '../engine/detections.js';
import type { LayerView } from '../engine/layer-view.js';
import { CamerasError } from '../errors.js';
import { PRESETS, presetByName } from '../io/preprocess.js';
import type { OnnxGraph } from '../onnx/graph.js';
import { patchGrid } from '../onnx/patch.js';
import { type PositionResample, positionEmbeddings } from '../onnx/position-embedding.js';
import { unshiftedWindowBlocks } from '../onnx/window-shift.js';
import { resolutionsFor, type ZooEntry } from './zoo.js';

/** One output of the model: its name and the shape it declares (-1 where dynamic). */
export interface ModelOutput {
  name: string;
  shape: readonly number[] | undefined;
}

/**
 * What a model is, decided once for every entry point (library, CLI, jobs, page): how an image becomes its input,
 * where it is explained and what is explained. Declared by the zoo for its models, inferred from the graph
 * otherwise, and overridable by the caller (`ProfileOverrides`).
 */
export interface ModelProfile {
  /** The model's name in messages: its zoo name, file or URL. */
  name: string;
  /** Preprocessing preset (`PRESETS`): how an image's pixels become the input tensor. */
  preprocess: string;
  /** The square side the model was trained at: images are resized to it. */
  inputSize: number;
  /** Multi-scale methods' default square sizes (CAMERAS, CAM methods with `multiScale`); the first is the map's size. */
  resolutions: readonly number[];
  /** The side of the patches a transformer cuts its input into (its patch embedding's kernel and stride), if any. */
  patch?: number;
  /**
   * Where the graph computes the model at one input size only: the Swin blocks whose window shifts the exporter froze
   * at its traced size (`unshiftedWindowBlocks`). Such a model is explained at its input size alone.
   */
  frozenShifts?: readonly string[];
  /** The side of the patch grid a ViT's learnt position embedding was trained for, if it has one. */
  positionGrid?: number;
  /**
   * How that embedding is resampled to other sizes: `torchvision` (default; its `interpolate_embeddings`) or `timm`
   * (its `resample_abs_pos_embed`, for grids at or above the trained one).
   */
  positionResample?: PositionResample;
  /** Class names by index, when known. */
  labels?: readonly string[];
  /** True where the labels are assumed (ImageNet's for a plain 1000-class model), not declared. */
  labelsAssumed?: boolean;
  /** The target layer named by default (a torch module path, Keras layer, node or tensor); absent: the input of the last global pooling. */
  layer?: string;
  /** How the target layer's tensor becomes `[N, C, H, W]`; absent: detected (`detectLayerView`). */
  layerView?: LayerView;
  /** Every output of the model. */
  outputs: readonly ModelOutput[];
  /** The output explained by default: the first. A trailing (Log)Softmax is stripped: a classifier's logits are explained. */
  output: string;
  /**
   * How the explained output lists a detector's predictions before NMS (`DetectionLayout`): declared, or read from a
   * `[1, N, F]` / `[1, F, N]` output's shape; absent for classifiers and segmenters.
   */
  detectionLayout?: DetectionLayout;
}

/** What a caller (or the zoo) may declare of a profile; the rest is inferred from the graph. */
export type ProfileOverrides = Partial<Omit<ModelProfile, 'outputs'>>;

/** A zoo entry's declarations as profile overrides. */
export function zooProfile(entry: ZooEntry): ProfileOverrides {
  // The resolutions follow the input size (`resolveProfile`), so overriding the size moves them too.
  return {
    name: entry.name,
    preprocess: entry.preprocess,
    inputSize: entry.inputSize,
    ...(entry.labels.length ? { labels: entry.labels } : {}),
    ...(entry.layer ? { layer: entry.layer } : {}),
    ...(entry.detectionLayout ? { detectionLayout: entry.detectionLayout } : {}),
  };
}

/** Declared values first, then the caller's overrides; an override left undefined keeps the declared value. */
export function mergeProfiles(...layers: (ProfileOverrides | undefined)[]): ProfileOverrides {
  const merged: ProfileOverrides = {};
  for (const layer of layers)
    for (const [key, value] of Object.entries(layer ?? {})) if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  return merged;
}

/**
 * The profile of a model: `declared` (the zoo's and the caller's, see `mergeProfiles`) where given, else inferred from
 * the graph: the input side the graph declares (else the preset's, 224), `torchvision` preprocessing, the input side
 * and 7 more sizes 100 px apart, the first output.
 */
export function resolveProfile(graph: OnnxGraph, declared: ProfileOverrides = {}, source = 'model'): ModelProfile {
  const preprocess = declared.preprocess ?? 'torchvision';
  presetByName(preprocess);
  const input = graph.inputNames[0];
  const side = input ? graph.declaredShape(input)?.[2] : undefined;
  const patch = declared.patch ?? patchGrid(graph)?.patch;
  const positionGrid = declared.positionGrid ?? positionEmbeddings(graph)[0]?.grid;
  // A ViT exported with a dynamic side was trained at its position embedding's grid (384 px for a 24 x 24 grid).
  const trained = positionGrid && patch ? positionGrid * patch : undefined;
  const inputSize = declared.inputSize ?? (side !== undefined && side > 0 ? side : (trained ?? PRESETS[preprocess]?.size ?? 224));
  if (!Number.isInteger(inputSize) || inputSize < 8)
    throw new CamerasError(`input size ${inputSize} is not an integer of at least 8 pixels; give the size the model was trained at`);
  const frozen = unshiftedWindowBlocks(graph);
  if (declared.positionResample && !positionGrid)
    throw new CamerasError(
      `${declared.name ?? source} has no learnt position embedding to resample (a ViT's [1, prefix + h*w, C] added to its tokens); leave out the position resampling`,
    );
  const positionResample = declared.positionResample ?? (positionGrid ? 'torchvision' : undefined);
  if (positionResample && positionResample !== 'torchvision' && positionResample !== 'timm')
    throw new CamerasError(`unknown position embedding resampling '${String(positionResample)}'; use torchvision or timm`);
  const outputs = graph.outputNames.map((name) => ({ name, shape: graph.declaredShape(name) }));
  const first = graph.outputNames[0];
  if (!first) throw new CamerasError('the model has no outputs; export it again');
  const output = checkOutput(outputs, declared.output ?? first);
  const shape = outputs.find((o) => o.name === output)?.shape;
  // Declared: checked against the shape. Inferred only where a [1, N, F] or [1, F, N] shape reads as one.
  const layout =
    declared.detectionLayout !== undefined
      ? detectionLayout(shape ?? [], declared.detectionLayout, `output '${output}'`)
      : shape?.length === 3
        ? inferLayout(shape)
        : undefined;
  return {
    name: declared.name ?? source,
    preprocess,
    inputSize,
    resolutions: declared.resolutions ?? (frozen.length > 0 ? [inputSize] : resolutionsFor(inputSize, patch)),
    ...(patch ? { patch } : {}),
    ...(frozen.length > 0 ? { frozenShifts: frozen } : {}),
    ...(positionGrid ? { positionGrid } : {}),
    ...(positionResample ? { positionResample } : {}),
    ...(declared.labels ? { labels: declared.labels, ...(declared.labelsAssumed ? { labelsAssumed: true } : {}) } : {}),
    ...(declared.layer ? { layer: declared.layer } : {}),
    ...(declared.layerView ? { layerView: declared.layerView } : {}),
    outputs,
    output,
    ...(layout ? { detectionLayout: layout } : {}),
  };
}

function inferLayout(shape: readonly number[]): DetectionLayout | undefined {
  try {
    return detectionLayout(shape);
  } catch {
    return undefined;
  }
}

/** `name` when the model has that output; else a one-line error listing its outputs. */
export function checkOutput(outputs: readonly ModelOutput[], name: string): string {
  if (!outputs.some((o) => o.name === name))
    throw new CamerasError(`the model has no output '${name}'; its outputs: ${outputs.map((o) => o.name).join(', ')}`);
  return name;
}

/**
 * The layer view of a layer tensor of shape `shape` (at a square input) where none is declared: tokens for rank 3
 * (a transformer's `[N, T, C]`); channels-last for rank 4 where the graph makes the tensor so (a Transpose to
 * `[0, 2, 3, 1]`, or a LayerNormalization over the last axis, as Swin's norms) or, failing that, where the shape
 * says so (`[N, s, s, C]` with `C != s`: a Swin block's residual sum); else NCHW.
 */
export function detectLayerView(graph: OnnxGraph, tensor: string, shape: readonly number[]): LayerView {
  const rank = shape.length;
  if (rank === 3) return { kind: 'tokens' };
  const made = graph.producers.get(tensor)?.node;
  const perm = made?.opType === 'Transpose' ? made.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number) : undefined;
  const axis = made?.opType === 'LayerNormalization' ? Number(made.attribute?.find((a) => a.name === 'axis')?.i ?? -1) : undefined;
  if (rank === 4 && (perm?.join(',') === '0,2,3,1' || axis === -1 || axis === 3)) return { kind: 'nhwc' };
  if (rank === 4 && perm === undefined && shape[1] === shape[2] && shape[3] !== shape[1] && shape[2] !== shape[3]) return { kind: 'nhwc' };
  return { kind: 'nchw' };
}

/**
 * Refuses input sides a model does not compute right at: a Swin export whose window shifts were frozen at its traced
 * size (`frozenShifts`) runs at other sizes but computes another function there; with timm's position resampling,
 * sizes whose patch grid is smaller than the trained one (timm antialiases there, we do not).
 */
export function checkSizes(profile: ModelProfile, sizes: readonly number[]): void {
  const { positionGrid, patch } = profile;
  if (profile.positionResample === 'timm' && positionGrid && patch) {
    const below = sizes.find((size) => Math.floor(size / patch) < positionGrid);
    if (below !== undefined)
      throw new CamerasError(
        `${below} px gives a ${Math.floor(below / patch)} x ${Math.floor(below / patch)} patch grid, smaller than the ${positionGrid} x ${positionGrid} the position embedding was trained for: timm resamples it there with an antialiasing filter we do not reproduce; use sizes of at least ${positionGrid * patch} px, or --position-resample torchvision`,
      );
  }
  if (!profile.frozenShifts) return;
  const other = sizes.find((size) => size !== profile.inputSize);
  if (other === undefined) return;
  throw new CamerasError(
    `${profile.name} computes another function at ${other} px than at ${profile.inputSize} px: its export froze the window shifts of ${profile.frozenShifts.join(', ')} at the traced size (torchvision's Swin decides them from the feature size in Python); explain it at ${profile.inputSize} px (--resolutions ${profile.inputSize}), or export it once per input size and explain each`,
  );
}
