import type { Annotation } from '../datasets/voc.js';
import type { FloatArray } from '../io/npy.js';

/** Logits of each input, as `Explainer.forward` gives them (stacked into few ONNX Runtime calls). */
export type Forward = (inputs: FloatArray[]) => Promise<Float32Array[]>;

/** One scored value of a pair: a number, a flag or a curve. */
export type ScoreValue = number | boolean | number[];

/** One (image, class, method) pair's scores, by the keys the metrics write; a metric not asked for is absent. */
export type PairScores = Record<string, ScoreValue | undefined>;

/** One pair as a metric sees it: the explained map, the input it explains and the annotation it is judged by. */
export interface ScoredPair {
  /** Logits of each input (stacked into few ONNX Runtime calls). */
  forward: Forward;
  /** The normalised input the map explains. */
  tensor: FloatArray;
  /** The map at the input's size, in [0, 1]. */
  map: ArrayLike<number>;
  /** The map as the method returned it (pointing upsamples this one to the image). */
  result: { map: ArrayLike<number>; height: number; width: number };
  /** The explained class. */
  classIndex: number;
  annotation: Annotation;
  className: string;
  /** The pointing game's tolerance in pixels. */
  tolerance: number;
  /** Insertion and deletion follow the explained class instead of the model's top-1 (RISE's choice). */
  annotatedClass: boolean;
}

/** A recorded pair: its scores, and which class it was (with what else results.jsonl keeps of it). */
export interface ScoredRecord {
  class: string;
  [key: string]: ScoreValue | string | undefined;
}

/** One column of the summary: its key in summary.json, its header in summary.csv and the table, and how it summarises. */
export interface SummaryColumn {
  key: string;
  header: string;
  /** One method's records to one number (undefined: nothing to summarise). */
  summarise(records: readonly ScoredRecord[], classes: readonly string[]): number | undefined;
}

/**
 * What `cameras eval` knows of a metric: a new metric is its file (this descriptor beside its code) and one line
 * in `metrics/names.ts`.
 */
export interface EvalMetric {
  /** The name `--metrics` takes. */
  name: string;
  /** One line for `--help` and the README. */
  summary: string;
  /** In the set scored when `--metrics` is not given. */
  byDefault: boolean;
  /** The summary's columns. */
  columns: readonly SummaryColumn[];
  /** What the report says of its columns. */
  caption: string;
  /** Curves the report plots as means over images: the record key of a per-pair curve, and the panel's title. */
  curves?: readonly { key: string; title: string }[];
  /** The pair's scores, under this metric's keys. */
  score(pair: ScoredPair): Promise<PairScores>;
}

/** The mean of one key's finite values over the records. */
export function meanColumn(key: string, header: string): SummaryColumn {
  return {
    key,
    header,
    summarise(records) {
      const values = records.map((r) => r[key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
    },
  };
}
