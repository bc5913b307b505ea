import type { InferenceSession, Tensor } from 'onnxruntime-common';

/**
 * The ONNX Runtime flavour in use: `onnxruntime-node` in Node, `onnxruntime-web` in a browser. The core
 * takes it as a value so the same code runs in both.
 */
export interface OrtRuntime {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof Tensor;
}

export interface SessionOptions {
  /** Intra-op threads; default: ONNX Runtime's choice (all cores). */
  threads?: number;
  /** MaxPool back-propagates through its Indices output (default) or by comparisons (onnxruntime-web's WebGPU). */
  maxPoolIndices?: boolean;
  /** Where ONNX Runtime's optimised gradient graphs are kept between processes (Node; see `SessionCache`). */
  sessionCache?: SessionCache;
  /**
   * The model's bytes as parsed into the graph, unchanged (saves re-encoding them), or a function that reads them:
   * called only when the session is not in the cache (the graph may then be the model's outline).
   */
  modelBytes?: Uint8Array | (() => Promise<Uint8Array>);
  /** Passed to ONNX Runtime as they are, e.g. `executionProviders: ['webgpu', 'wasm']` in a browser. */
  runtimeOptions?: InferenceSession.SessionOptions;
}

/**
 * ONNX Runtime's own log lines are silenced (fatal only): each of its errors reaches the user as our one line,
 * and its warnings (telemetry with an unwritable HOME, unused initialisers) are noise to them.
 */
export const QUIET = { logSeverityLevel: 4, logVerbosityLevel: 0 } as const;

/** ONNX Runtime's options for every session the explainer makes: quiet, the threads asked, the caller's own last. */
export function ortSessionOptions(options: Pick<SessionOptions, 'threads' | 'runtimeOptions'>): InferenceSession.SessionOptions {
  return {
    ...QUIET,
    // Pre-packing copies every Gemm/MatMul weight (VGG-16's classifier: 470 MB) and measured no faster here.
    extra: { session: { disable_prepacking: '1' } },
    ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    ...options.runtimeOptions,
  };
}

/**
 * A store for ONNX Runtime's optimised models, so a later process skips building the gradient graph and
 * optimising it (ResNet-50: 0.27 s of a cold start). `key` names the model and what was built from it; the
 * Node implementation keeps files under the cache folder.
 */
export interface SessionCache {
  /** The cached file and the graph's names for `key`, if there. */
  get(key: string): Promise<{ path: string; meta: unknown } | undefined>;
  /**
   * Where ONNX Runtime writes the optimised model before `put`, and the file name (same folder) for its weights:
   * kept apart from the graph, ONNX Runtime maps them into memory when it loads the model again instead of
   * copying them (VGG-16: session 0.95 -> 0.02 s).
   */
  temporary(key: string): { path: string; weightsFile: string } | undefined;
  /** Keeps what ONNX Runtime wrote at `temporary` under `key`, with the graph's names. */
  put(key: string, temporary: { path: string; weightsFile: string }, meta: unknown): Promise<void>;
  /** Removes what ONNX Runtime may have written at `temporary` when the session could not be made. */
  discard(temporary: { path: string; weightsFile: string }): Promise<void>;
}
