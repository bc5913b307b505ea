import type { InferenceSession } from 'onnxruntime-common';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { buildGradientGraph, type GradientGraph, logitsOf } from '../onnx/autodiff.js';
import type { OnnxGraph } from '../onnx/graph.js';
import { requireWholeModel } from '../onnx/outline.js';
import { type OrtRuntime, QUIET, type SessionOptions } from './runtime.js';
import { type Target, targetSeed } from './scores.js';

/** What one forward-and-backward pass returns. */
export interface GradientPass {
  /** Logits, [batch, classes]. */
  logits: FloatArray;
  /** Per target, in the order asked: the activation (absent for the input) and d(seed . logits)/d(target). */
  targets: { activation?: FloatArray; gradient: FloatArray }[];
}

/**
 * One ONNX Runtime session over a model with its backward pass appended, built once per
 * (model, targets) and reused for every class and input size.
 */
export class GradientSession {
  /** The gradient graph's names (its bytes are dropped once ONNX Runtime holds the session). */
  readonly graph: Omit<GradientGraph, 'bytes'>;
  /** Classes the model outputs: declared by the model, or learnt from the first pass. */
  private classes: number | undefined;
  /** False until a pass has shown the class count right (a declared one may be stale). */
  private classesSeen = false;
  private readonly runtime: OrtRuntime;
  private session: InferenceSession | undefined;

  private constructor(runtime: OrtRuntime, graph: Omit<GradientGraph, 'bytes'>, session: InferenceSession, classCount: number | undefined) {
    this.runtime = runtime;
    this.graph = graph;
    this.session = session;
    this.classes = classCount;
  }

  get classCount(): number | undefined {
    return this.classes;
  }

  static async create(runtime: OrtRuntime, model: OnnxGraph, targets: string[], options: SessionOptions = {}): Promise<GradientSession> {
    const common = {
      ...QUIET,
      // Pre-packing copies every Gemm/MatMul weight (VGG-16's classifier: 470 MB) and measured no faster here.
      extra: { session: { disable_prepacking: '1' } },
      ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      ...options.runtimeOptions,
    };
    // The class count the model declares on its logits (or, past a trailing softmax, on its output); the gradient
    // graph's own names for them are not in the model.
    const declared = (() => {
      for (const name of [logitsOf(model), model.outputNames[0] ?? '']) {
        const shape = model.declaredShape(name);
        if (shape && shape.length === 2 && (shape[1] as number) > 0) return shape[1];
      }
      return undefined;
    })();
    const cache = options.sessionCache;
    const key = cache ? JSON.stringify({ targets, maxPoolIndices: options.maxPoolIndices ?? true }) : '';
    const hit = cache ? await cache.get(key) : undefined;
    if (hit) {
      try {
        // Already optimised: loaded from its file (ONNX Runtime reads it; no graph to build, nothing to optimise).
        const session = await runtime.InferenceSession.create(hit.path as never, { ...common, graphOptimizationLevel: 'disabled' });
        const graph = hit.meta as Omit<GradientGraph, 'bytes'>;
        return new GradientSession(runtime, graph, session, declared);
      } catch {
        // A cached file that does not load is built again below.
      }
    }
    // The model's own bytes when the caller has them: re-encoding a large model costs time and a copy.
    const source = typeof options.modelBytes === 'function' ? await options.modelBytes() : options.modelBytes;
    if (!source) requireWholeModel(model.model);
    const { bytes, ...graph } = buildGradientGraph(source ?? model.toBytes(), {
      targets,
      seedInputs: true,
      maxPoolIndices: options.maxPoolIndices,
    });
    const temporary = cache?.temporary(key);
    const creating = runtime.InferenceSession.create(bytes, {
      // 'all' keeps every added output and measured 15-20% faster than 'disabled' with equal numbers.
      graphOptimizationLevel: 'all',
      ...common,
      ...(temporary
        ? {
            optimizedModelFilePath: temporary.path,
            extra: {
              session: {
                ...(common.extra as { session?: Record<string, string> } | undefined)?.session,
                optimized_model_external_initializers_file_name: temporary.weightsFile,
                optimized_model_external_initializers_min_size_in_bytes: '1024',
              },
            },
          }
        : {}),
    });
    const session = await creating.catch(async (error: unknown) => {
      if (cache && temporary) await cache.discard(temporary).catch(() => undefined);
      throw error;
    });
    if (cache && temporary) await cache.put(key, temporary, graph).catch(() => undefined);
    return new GradientSession(runtime, graph, session, declared);
  }

  /**
   * Runs the model on `input` (NCHW) and back-propagates the target (default: the class logit); a null
   * class asks for the top-1 class of each image.
   */
  async run(input: FloatArray, classIndex: number | null, target?: Target): Promise<GradientPass> {
    if (!this.session) throw new CamerasError('this explainer was disposed; create a new one');
    const batch = input.shape[0] as number;
    if (
      this.classes === undefined &&
      (classIndex !== null || (target !== undefined && target !== 'logit' && target !== 'prob' && target !== 'logprob'))
    ) {
      // The model does not declare its class count: one top-1 pass tells it, once.
      this.classes = (await this.run(input, null)).logits.shape[1];
    }
    // The seed broadcasts over the classes when the count is still unknown (top-1, no class given).
    const classes = this.classes ?? 1;
    const one = targetSeed(target, classIndex, classes);
    const seed = new Float32Array(batch * classes);
    for (let b = 0; b < batch; b++) seed.set(one.seed, b * classes);
    const { Tensor } = this.runtime;
    const feeds = {
      [this.graph.input]: new Tensor('float32', input.data, input.shape),
      [this.graph.seed]: new Tensor('float32', seed, [batch, classes]),
      [this.graph.topOne as string]: new Tensor('float32', new Float32Array(batch).fill(one.topOne), [batch, 1]),
      [this.graph.softmax as string]: new Tensor('float32', new Float32Array(batch).fill(one.softmax), [batch, 1]),
      [this.graph.logSoftmax as string]: new Tensor('float32', new Float32Array(batch).fill(one.logSoftmax), [batch, 1]),
    };
    let outputs: InferenceSession.OnnxValueMapType;
    try {
      outputs = await this.session.run(feeds);
    } catch (error) {
      if (!this.classesSeen && this.classes !== undefined) {
        // A declared class count the model does not keep (an edited head): learn it from a top-1 pass, then retry.
        this.classes = undefined;
        const learnt = await this.run(input, null).catch(() => undefined);
        if (learnt) return this.run(input, classIndex, target);
      }
      throw this.explainFailure(input, (error as Error).message);
    }
    // Each output read once, then released; a name asked twice (the logits as a target) gets the same array.
    const taken = new Map<string, FloatArray>();
    const take = (name: string): FloatArray => {
      const done = taken.get(name);
      if (done) return done;
      const value = outputs[name];
      if (!value) throw new Error(`missing output ${name}`);
      const result = { data: value.data as Float32Array, shape: [...value.dims] };
      value.dispose?.();
      taken.set(name, result);
      return result;
    };
    const logits = take(this.graph.logits);
    this.classes ??= logits.shape[1];
    this.classesSeen = true;
    return {
      logits,
      targets: this.graph.targets.map((t) => ({
        activation: t.activation ? take(t.activation) : undefined,
        gradient: take(t.gradient),
      })),
    };
  }

  /** ONNX Runtime's failure in one line, with the fix where the model was exported for one size. */
  private explainFailure(input: FloatArray, message: string): CamerasError {
    const first = message.split('\n')[0]?.slice(0, 240) ?? '';
    const [, , h, w] = input.shape as [number, number, number, number];
    const exported = this.graph.exportedSize;
    if (exported && (exported[0] !== h || exported[1] !== w)) {
      const node = /node\. Name:'([^']+)'/i.exec(first)?.[1] ?? /\(([^)]+)\)/.exec(first)?.[1];
      return new CamerasError(
        `the model was exported for ${exported[0]} x ${exported[1]} inputs and ${node ? `node '${node}'` : 'a node'} fixes that size, so it cannot run at ${h} x ${w}; re-export with torch.onnx.export(..., dynamic_axes={'${this.graph.input}': {0: 'batch', 2: 'height', 3: 'width'}}) or keep to that size: 'resolutions' ${exported[0]}`,
      );
    }
    const hint =
      Math.min(h, w) < 64 ? "the size is likely too small for its strides and pooling: use larger 'resolutions'" : 'check the input';
    return new CamerasError(`the model cannot run on a ${h} x ${w} input (ONNX Runtime: ${first}); ${hint}`);
  }

  /** False once the model has shown it cannot run a batch (its graph bakes in batch 1). */
  private batching = true;

  /**
   * Runs several same-sized images: stacked into one batch where the model allows it, else one at a
   * time. Returns one pass per image (views into the batch's outputs).
   */
  async runEach(inputs: FloatArray[], classIndex: number | null, target?: Target): Promise<GradientPass[]> {
    if (inputs.length === 1 || !this.batching) {
      const passes: GradientPass[] = [];
      for (const input of inputs) passes.push(await this.run(input, classIndex, target));
      return passes;
    }
    const [, ...rest] = (inputs[0] as FloatArray).shape;
    const each = (inputs[0] as FloatArray).data.length;
    const stacked = new Float32Array(each * inputs.length);
    for (const [i, input] of inputs.entries()) stacked.set(input.data, i * each);
    let pass: GradientPass;
    try {
      pass = await this.run({ data: stacked, shape: [inputs.length, ...rest] }, classIndex, target);
    } catch {
      this.batching = false;
      return this.runEach(inputs, classIndex, target);
    }
    const slice = (t: FloatArray, i: number): FloatArray => {
      const size = t.data.length / inputs.length;
      return { data: t.data.subarray(i * size, (i + 1) * size), shape: [1, ...t.shape.slice(1)] };
    };
    return inputs.map((_, i) => ({
      logits: slice(pass.logits, i),
      targets: pass.targets.map((t) => ({
        activation: t.activation ? slice(t.activation, i) : undefined,
        gradient: slice(t.gradient, i),
      })),
    }));
  }

  async dispose(): Promise<void> {
    await this.session?.release();
    this.session = undefined;
  }
}
