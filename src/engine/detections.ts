import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import type { InputSize, OutputTarget } from './scores.js';

/**
 * How a single-stage detector's output, exported before NMS, lists its predictions (one row per anchor or cell):
 * - `yolo`: `[1, N, 4 + 1 + K]`, (cx, cy, w, h) in input pixels, objectness, K class scores (YOLOv5, YOLOv7);
 * - `yolov8`: `[1, 4 + K, N]`, (cx, cy, w, h) and K class scores, no objectness (YOLOv8, YOLO11);
 * - `ssd`: `[1, N, 4 + K]`, (x1, y1, x2, y2) in input pixels and K class scores (an SSD's boxes and scores concatenated).
 */
export type DetectionLayout = 'yolo' | 'yolov8' | 'ssd';
export const DETECTION_LAYOUTS: readonly DetectionLayout[] = ['yolo', 'yolov8', 'ssd'];

/** A box `[x1, y1, x2, y2]` in pixels, x1 < x2 and y1 < y2. */
export type Box = readonly [number, number, number, number];

/** One row of a detector's output: its box, objectness (1 where the layout has none) and class scores. */
export interface Prediction {
  /** The row (anchor, cell) in the output. */
  index: number;
  box: Box;
  objectness: number;
  classScores: Float32Array;
}

/** A prediction kept by NMS: its label is its best class, its score objectness x that class's score. */
export interface Detection extends Prediction {
  label: number;
  score: number;
}

/** Where each field sits in a layout, given the output's shape. */
interface Fields {
  count: number;
  classes: number;
  /** Offset of field f of prediction i in the data. */
  at: (i: number, f: number) => number;
  objectness: boolean;
  corners: boolean;
}

function fieldsOf(shape: readonly number[], layout: DetectionLayout): Fields {
  const [, a, b] = shape as [number, number, number];
  if (layout === 'yolov8') return { count: b, classes: a - 4, at: (i, f) => f * b + i, objectness: false, corners: false };
  const extra = layout === 'yolo' ? 5 : 4;
  return { count: a, classes: b - extra, at: (i, f) => i * b + f, objectness: layout === 'yolo', corners: layout === 'ssd' };
}

/**
 * The layout of an output of this shape: `given` when it fits, else what the shape tells (predictions outnumber
 * fields: rows are predictions, `yolo`; columns are, `yolov8`). An `ssd` output looks like a `yolo` one, so it is
 * always named. Refuses a shape no layout reads, in one line.
 */
export function detectionLayout(
  shape: readonly (number | string | undefined)[],
  given?: DetectionLayout,
  output = 'the output',
): DetectionLayout {
  const size = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : undefined);
  const describe = `[${shape.map((d) => size(d) ?? '?').join(', ')}]`;
  if (given !== undefined && !DETECTION_LAYOUTS.includes(given))
    throw new CamerasError(`unknown detection layout '${given}'; choose one of: ${DETECTION_LAYOUTS.join(', ')}`);
  const [, a, b] = [size(shape[0]), size(shape[1]), size(shape[2])];
  // Predictions outnumber fields; a dynamic dimension is the predictions' (their count follows the input's size).
  const inferred: DetectionLayout | undefined =
    a !== undefined && b !== undefined ? (a >= b ? 'yolo' : 'yolov8') : b !== undefined ? 'yolo' : a !== undefined ? 'yolov8' : undefined;
  const layout = given ?? inferred;
  if (shape.length !== 3 || layout === undefined)
    throw new CamerasError(
      `${output} is ${describe}, not a detector's predictions before NMS ([1, N, 4 + 1 + K] yolo, [1, 4 + K, N] yolov8, [1, N, 4 + K] ssd); export the model without NMS${shape.length === 3 ? ', or name its layout (--layout)' : ', or explain another output'}`,
    );
  const fields = layout === 'yolov8' ? a : b;
  const minimum = layout === 'yolo' ? 6 : 5;
  if (fields !== undefined && fields < minimum)
    throw new CamerasError(
      `${output} is ${describe}: ${fields} fields per prediction, too few for the ${layout} layout (${layout === 'yolo' ? '4 + 1' : '4'} + classes); name another (--layout)`,
    );
  return layout;
}

/** The class count a layout reads from an output of this shape. */
export function detectionClasses(shape: readonly number[], layout: DetectionLayout): number {
  return fieldsOf(shape, layout).classes;
}

/** Every prediction of one image's output `[1, ...]`. */
export function readPredictions(output: FloatArray, layout: DetectionLayout): Prediction[] {
  const { count, classes, at, objectness, corners } = fieldsOf(output.shape, layout);
  const v = output.data;
  const out: Prediction[] = [];
  for (let i = 0; i < count; i++) {
    const a = v[at(i, 0)] as number;
    const b = v[at(i, 1)] as number;
    const c = v[at(i, 2)] as number;
    const d = v[at(i, 3)] as number;
    const box: Box = corners ? [a, b, c, d] : [a - c / 2, b - d / 2, a + c / 2, b + d / 2];
    const scores = new Float32Array(classes);
    const first = objectness ? 5 : 4;
    for (let k = 0; k < classes; k++) scores[k] = v[at(i, first + k)] as number;
    out.push({ index: i, box, objectness: objectness ? (v[at(i, 4)] as number) : 1, classScores: scores });
  }
  return out;
}

export function boxIou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

export interface NmsOptions {
  /** Kept when objectness x best class score exceeds it (default 0.25). */
  scoreThreshold?: number;
  /** A box is dropped when it overlaps a better one of its class by more than this IoU (default 0.45). */
  iouThreshold?: number;
  /** At most this many detections, best first (default 100). */
  maxDetections?: number;
}

/** Class-wise non-maximum suppression, best score first, as torchvision's `batched_nms` keeps them. */
export function nonMaxSuppression(predictions: readonly Prediction[], options: NmsOptions = {}): Detection[] {
  const threshold = options.scoreThreshold ?? 0.25;
  const overlap = options.iouThreshold ?? 0.45;
  const candidates: Detection[] = [];
  for (const p of predictions) {
    let label = 0;
    for (let k = 1; k < p.classScores.length; k++) if ((p.classScores[k] as number) > (p.classScores[label] as number)) label = k;
    const score = p.objectness * (p.classScores[label] as number);
    if (score > threshold && p.box[2] > p.box[0] && p.box[3] > p.box[1]) candidates.push({ ...p, label, score });
  }
  candidates.sort((a, b) => b.score - a.score || a.index - b.index);
  const kept: Detection[] = [];
  for (const c of candidates) {
    if (kept.length >= (options.maxDetections ?? 100)) break;
    if (!kept.some((k) => k.label === c.label && boxIou(k.box, c.box) > overlap)) kept.push(c);
  }
  return kept;
}

/** The detections of one image's output. */
export function detect(output: FloatArray, layout: DetectionLayout, options?: NmsOptions): Detection[] {
  return nonMaxSuppression(readPredictions(output, layout), options);
}

/** Detections with their boxes clipped to a `width x height` input; those left without area are dropped. */
export function clipDetections(detections: readonly Detection[], width: number, height: number): Detection[] {
  return detections
    .map((d) => ({
      ...d,
      box: [Math.max(0, d.box[0]), Math.max(0, d.box[1]), Math.min(width, d.box[2]), Math.min(height, d.box[3])] as const,
    }))
    .filter((d) => d.box[2] > d.box[0] && d.box[3] > d.box[1]);
}

/** Refuses a box that is not inside a `width x height` input or has no area, and a label the model lacks. */
export function checkBox(box: Box, label: number, width: number, height: number, classes: number): void {
  if (box.length !== 4 || box.some((v) => !Number.isFinite(v)))
    throw new CamerasError(`the box needs four numbers x1,y1,x2,y2; got ${box.join(',')}`);
  const [x1, y1, x2, y2] = box;
  if (!(x1 < x2 && y1 < y2)) throw new CamerasError(`the box ${box.join(',')} has no area; give x1,y1,x2,y2 with x1 < x2 and y1 < y2`);
  if (x1 < 0 || y1 < 0 || x2 > width || y2 > height)
    throw new CamerasError(`the box ${box.join(',')} is outside the ${width} x ${height} image; give corners inside it`);
  if (!Number.isInteger(label) || label < 0 || label >= classes)
    throw new CamerasError(`label ${label} is not one of the detector's ${classes} classes (0-${classes - 1})`);
}

/** A detection to explain: its box in the pixels of an input of `size`, and its label. */
export interface DetectionSpec {
  box: Box;
  label: number;
  /** The input size the box is in (the explained input's); passes at other sizes scale it. */
  size: InputSize;
  layout: DetectionLayout;
  /** For `score` (masking methods): the detections' threshold and NMS overlap (default 0.05 and 0.45, torchvision's). */
  nms?: NmsOptions;
  /** `score`'s IoU threshold for a detection to count as the box (default 0.5, pytorch-grad-cam's). */
  iouThreshold?: number;
}

/** A target over a detector's output: the detection it explains, and the functions methods follow. */
export interface DetectionTarget extends OutputTarget {
  detection: DetectionSpec;
}

export function isDetectionTarget(target: unknown): target is DetectionTarget {
  return typeof target === 'object' && target !== null && 'detection' in target && 'score' in target;
}

/** A box with its x scaled by `sx` and its y by `sy`. */
export function scaleBox(box: Box, sx: number, sy: number): Box {
  return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy];
}

function scaledBox(spec: DetectionSpec, input: InputSize | undefined): Box {
  return input ? scaleBox(spec.box, input.width / spec.size.width, input.height / spec.size.height) : spec.box;
}

/**
 * The row that stands for the detection in a pass: the prediction with the highest IoU(box, reference) x
 * objectness x score of the label (the reference box scaled to the pass's input), so a pass at another scale
 * follows the same object; -1 where no prediction overlaps it.
 */
export function matchingPrediction(predictions: readonly Prediction[], spec: DetectionSpec, input?: InputSize): number {
  const reference = scaledBox(spec, input);
  let best = -1;
  let bestValue = 0;
  for (const p of predictions) {
    const value = boxIou(p.box, reference) * p.objectness * (p.classScores[spec.label] as number);
    if (value > bestValue) {
      bestValue = value;
      best = p.index;
    }
  }
  return best;
}

/**
 * The target of a detection (pytorch-grad-cam's two, one per kind of method):
 * - `gradient` (gradient CAMs, CAMERAS, input gradients): d(objectness x score of the label)/d(output) at the
 *   matching prediction (`matchingPrediction`), the anchor's class score times objectness;
 * - `score` (Ablation-CAM, Score-CAM, what masking compares): `FasterRCNNBoxScoreTarget`: the detections after NMS,
 *   the one of highest IoU with the box; if that IoU exceeds 0.5 and its label is the box's, IoU + its score, else 0.
 */
export function detectionTarget(spec: DetectionSpec): DetectionTarget {
  const name = `box:${spec.box.map((v) => Math.round(v * 10) / 10).join(',')}:${spec.label}`;
  return {
    name,
    detection: spec,
    score(output, input) {
      const detections = detect(output, spec.layout, { scoreThreshold: 0.05, ...spec.nms });
      const reference = scaledBox(spec, input);
      let best: Detection | undefined;
      let bestIou = -1;
      for (const d of detections) {
        const iou = boxIou(reference, d.box);
        if (iou > bestIou) {
          bestIou = iou;
          best = d;
        }
      }
      return best && bestIou > (spec.iouThreshold ?? 0.5) && best.label === spec.label ? bestIou + best.score : 0;
    },
    gradient(output, input) {
      const seed = new Float32Array(output.data.length);
      const index = matchingPrediction(readPredictions(output, spec.layout), spec, input);
      if (index < 0) return seed;
      const { at, objectness } = fieldsOf(output.shape, spec.layout);
      const first = objectness ? 5 : 4;
      const classScore = output.data[at(index, first + spec.label)] as number;
      if (objectness) {
        seed[at(index, 4)] = classScore;
        seed[at(index, first + spec.label)] = output.data[at(index, 4)] as number;
      } else seed[at(index, first + spec.label)] = 1;
      return seed;
    },
  };
}

/**
 * `box:x1,y1,x2,y2[:label]` as a box and, where given, a label (an index, or a name `toIndex` knows); undefined for
 * any other text. Refuses a malformed box in one line.
 */
export function parseBoxTarget(text: string, toIndex: (label: string) => number = Number): { box: Box; label?: number } | undefined {
  const match = /^box:([^:]*)(?::(.+))?$/.exec(text);
  if (!match) return undefined;
  const values = (match[1] as string).split(',').map((v) => (v.trim() === '' ? Number.NaN : Number(v)));
  if (values.length !== 4 || values.some((v) => !Number.isFinite(v)))
    throw new CamerasError(`--target ${text}: a box is box:x1,y1,x2,y2[:label] with four numbers in image pixels`);
  const label = match[2] === undefined ? undefined : toIndex(match[2]);
  if (label !== undefined && !Number.isInteger(label))
    throw new CamerasError(`--target ${text}: unknown label '${match[2]}'; give an index or one of the model's labels`);
  return { box: values as unknown as Box, ...(label !== undefined ? { label } : {}) };
}
