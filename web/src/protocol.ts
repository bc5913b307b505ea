/** Messages between the page and its worker. */
import type { Target } from '../../src/core.ts';

export interface ModelSpec {
  /** A bundled model's zoo name, or a label for a file or URL. */
  name: string;
  /** Where the bytes come from: a same-origin path or URL, or the bytes themselves. */
  url?: string;
  bytes?: ArrayBuffer;
}

export interface ModelInfo {
  name: string;
  labels?: string[];
  inputSize: number;
  preprocess: string;
  layer: string;
  resolutions: number[];
  backend: string;
  seconds: number;
  /** What the explained output is: a classifier's classes, a segmenter's dense scores, a detector's predictions. */
  kind: 'classifier' | 'segmenter' | 'detector';
}

export interface ExplainRequest {
  /** RGB bytes of the image at its own size. */
  image: { data: Uint8Array; width: number; height: number };
  methods: string[];
  classIndex: number | null;
  target: Target;
  resolutions: number[];
  /** On a detector: which detection to explain, by its place in the listed ones (default 0, the best). */
  detection?: number;
}

/** A detector's detection, its box in the image's pixels. */
export interface ListedDetection {
  box: [number, number, number, number];
  label: number;
  score: number;
}

export interface MethodResult {
  method: string;
  map: Float32Array;
  width: number;
  height: number;
  /** What was explained (`logit`, `segment:3`, ...). */
  target: string;
  /** The class explained, where the output has classes; its probability and each scale's class where it is a classifier's. */
  classIndex?: number;
  probability?: number;
  classPerResolution?: Record<string, number>;
  scaleMaps?: { resolution: number; map: Float32Array; width: number; height: number }[];
  seconds: number;
}

export type ToWorker = { type: 'load'; model: ModelSpec } | ({ type: 'explain' } & ExplainRequest);

export type FromWorker =
  | { type: 'loaded'; info: ModelInfo }
  | { type: 'progress'; method: string; done: number; total: number }
  | {
      type: 'result';
      results: MethodResult[];
      top: { index: number; probability: number }[];
      input: { data: Uint8Array; width: number; height: number };
      /** On a detector: what it found, and which one the maps explain. */
      detections?: ListedDetection[];
      detection?: number;
    }
  | { type: 'error'; message: string };
