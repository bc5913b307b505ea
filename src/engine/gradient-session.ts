import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { CamerasError } from '../errors.js';
import type { FloatArray } from '../io/npy.js';
import { buildGradientGraph, type GradientGraph, logitsOf } from '../onnx/autodiff.js';
import type { OnnxGraph } from '../onnx/graph.js';
import { requireWholeModel } from '../onnx/outline.js';
import type { PositionResample } from '../onnx/position-embedding.js';
import { type OrtRuntime, ortSessionOptions, type SessionOptions } from './runtime.js';
import {
  type ClassifierTarget,
  isOutputTarget,
  isRegionTarget,
  type RegionMask,
  type RegionTarget,
  type Target,
  targetSeed,
} from './scores.js';

/** The mask fed where no region is asked for (a function target on a dense output). */
const EMPTY_MASK: RegionMask = { data: [0], width: 1, height: 1 };

/** What one forward-and-backward pass returns. */
export interface GradientPass {
  /** The explained output: a classifier's logits `[batch, classes]`, or any output of the model. */
  output: FloatArray;
  /**
   * Per target, in the order asked: the activation (absent for the input) and d(seed . output)/d(target); `native`:
   * the activation as the model made it, where a layer view laid it out otherwise.
   */
  targets: { activation?: FloatArray; gradient: FloatArray; native?: FloatArray }[];
}

/** ONNX Runtime could not run a pass (a size the model cannot take, a batch its graph bakes in): said in one line. */
export class RuntimeFailure extends CamerasError {}

/** What a session's output is: a classifier's logits, a dense `[N, K, H, W]` map of class scores, or anything else. */
export type OutputKind = 'classifier' | 'dense' | 'other';

/** The seed inputs of one pass: the seed itself, a classifier's flags (top-1, softmax, log-softmax), or a region. */
interface SeedParts {
  seed?: Tensor;
  flags?: [number, number, number];
  region?: { weights: Float32Array; classes: number; mask: RegionMask | undefined; predicted: number };
}

/** Options of a gradient session beyond ONNX Runtime's. */
export interface GradientSessionOptions extends SessionOptions {
  /** The output differentiated; default the model's first (past a trailing softmax). */
  output?: string;
  /** How a ViT's position embedding is resampled to other input sizes (default torchvision's). */
  positionResample?: PositionResample;
}

/**
 * One ONNX Runtime session over a model with its backward pass appended, built once per
 * (model, targets, output) and reused for every class, target and input size.
 */
export class GradientSession {
  /** The gradient graph's names (its bytes are dropped once ONNX Runtime holds the session). */
  readonly graph: Omit<GradientGraph, 'bytes'>;
  /** Classes the output has on its axis 1: declared by the model, or learnt from the first pass. */
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

  /** What the explained output is, by its rank. */
  get outputKind(): OutputKind {
    return this.graph.outputRank === 2 ? 'classifier' : this.graph.outputRank === 4 ? 'dense' : 'other';
  }

  static async create(
    runtime: OrtRuntime,
    model: OnnxGraph,
    targets: string[],
    options: GradientSessionOptions = {},
  ): Promise<GradientSession> {
    const common = ortSessionOptions(options);
    // The class count the model declares on the output (or, past a trailing softmax, on the softmax's); the gradient
    // graph's own names for them are not in the model.
    const declared = (() => {
      for (const name of [logitsOf(model, options.output), options.output ?? model.outputNames[0] ?? '']) {
        const shape = model.declaredShape(name);
        if (shape && (shape.length === 2 || shape.length === 4) && (shape[1] as number) > 0) return shape[1];
      }
      return undefined;
    })();
    const cache = options.sessionCache;
    const key = cache
      ? JSON.stringify({
          targets,
          maxPoolIndices: options.maxPoolIndices ?? true,
          output: options.output ?? null,
          ...(options.positionResample && options.positionResample !== 'torchvision' ? { positionResample: options.positionResample } : {}),
        })
      : '';
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
      output: options.output,
      seedInputs: true,
      maxPoolIndices: options.maxPoolIndices,
      positionResample: options.positionResample,
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

  /** Refuses a target the output cannot take, naming what would fit. */
  private checkTargetFits(target: Target | undefined): void {
    if (isOutputTarget(target)) return;
    const kind = this.outputKind;
    if (kind === 'classifier' && isRegionTarget(target))
      throw new CamerasError(
        `output '${this.graph.output}' is a classifier's [batch, classes]; a region target (segment) needs a dense [batch, K, H, W] output`,
      );
    if (kind === 'dense' && !isRegionTarget(target))
      throw new CamerasError(
        `output '${this.graph.output}' is a dense [batch, K, H, W] map; explain a region of it: target segment:<class> ({ segment: k } in the library)`,
      );
    if (kind === 'other')
      throw new CamerasError(
        `output '${this.graph.output}' has rank ${this.graph.outputRank}, neither a classifier's [batch, classes] nor a dense [batch, K, H, W] map; explain a function of it (a target with score and gradient, in the library)`,
      );
  }

  /**
   * Runs the model on `input` (NCHW) and back-propagates the target (default: the class logit); a null
   * class asks for the top-1 class of each image (classifiers).
   */
  async run(input: FloatArray, classIndex: number | null, target?: Target): Promise<GradientPass> {
    if (!this.session) throw new CamerasError('this explainer was disposed; create a new one');
    this.checkTargetFits(target);
    const batch = input.shape[0] as number;
    const { Tensor } = this.runtime;
    if (isOutputTarget(target)) {
      // Without a gradient function nothing is back-propagated: the activations and the output are what is asked
      // (the explainer refuses such a target for the methods that need gradients).
      if (!target.gradient) return this.pass(input, {});
      // The seed is a function of the output: a pass without one gives the output first.
      const { output } = await this.pass(input, {});
      const each = output.data.length / batch;
      const seed = new Float32Array(output.data.length);
      for (let b = 0; b < batch; b++) {
        const one = target.gradient(
          { data: output.data.subarray(b * each, (b + 1) * each), shape: [1, ...output.shape.slice(1)] },
          { height: input.shape[2] as number, width: input.shape[3] as number },
        );
        if (one.length !== each)
          throw new CamerasError(
            `the target's gradient has ${one.length} values; the output has ${each} per image (shape [${output.shape.join(', ')}])`,
          );
        seed.set(one, b * each);
      }
      return this.pass(input, { seed: new Tensor('float32', seed, output.shape) });
    }
    const needsCount = classIndex !== null || (target !== undefined && target !== 'logit' && target !== 'prob' && target !== 'logprob');
    // The model does not declare its class count: one pass with no seed tells it, once.
    if (this.classes === undefined && needsCount) this.classes = (await this.pass(input, {})).output.shape[1];
    const parts = this.seedParts(batch, classIndex, target);
    try {
      return await this.pass(input, parts, true);
    } catch (error) {
      if (error instanceof CamerasError) throw error;
      // A declared class count the model does not keep (an edited head): learn it from a pass, then retry.
      this.classes = undefined;
      const learnt = await this.pass(input, {}).catch(() => undefined);
      if (learnt) return this.run(input, classIndex, target);
      throw this.explainFailure(input, (error as Error).message);
    }
  }

  /** The seed inputs of a classifier or region target, for `batch` images. */
  private seedParts(batch: number, classIndex: number | null, target: Target | undefined): SeedParts {
    const { Tensor } = this.runtime;
    // The seed broadcasts over the classes when the count is still unknown (top-1, no class given).
    const classes = this.classes ?? 1;
    if (this.outputKind === 'classifier') {
      const one = targetSeed(target as ClassifierTarget | undefined, classIndex, classes);
      const seed = new Float32Array(batch * classes);
      for (let b = 0; b < batch; b++) seed.set(one.seed, b * classes);
      return { seed: new Tensor('float32', seed, [batch, classes]), flags: [one.topOne, one.softmax, one.logSoftmax] };
    }
    const region = target as RegionTarget;
    const weights = new Float32Array(batch * classes);
    for (let b = 0; b < batch; b++) weights[b * classes + region.segment] = 1;
    return { region: { weights, classes, mask: region.mask, predicted: region.mask ? 0 : 1 } };
  }

  /**
   * One forward and backward pass with these seed inputs; those not given are zero (no seed). `strict`: a failure
   * is thrown as ONNX Runtime gave it, for `run` to retry once with a learnt class count.
   */
  private async pass(input: FloatArray, parts: SeedParts, strict = false): Promise<GradientPass> {
    const session = this.session as InferenceSession;
    const batch = input.shape[0] as number;
    const { Tensor } = this.runtime;
    const flag = (value: number) => new Tensor('float32', new Float32Array(batch).fill(value), [batch, 1]);
    const feeds: Record<string, InstanceType<typeof Tensor>> = {
      [this.graph.input]: new Tensor('float32', input.data, input.shape),
      [this.graph.seed]:
        parts.seed ??
        new Tensor(
          'float32',
          new Float32Array(1),
          Array.from({ length: this.graph.outputRank }, () => 1),
        ),
    };
    if (this.graph.topOne) {
      const [topOne, softmax, logSoftmax] = parts.flags ?? [0, 0, 0];
      Object.assign(feeds, {
        [this.graph.topOne]: flag(topOne),
        [this.graph.softmax as string]: flag(softmax),
        [this.graph.logSoftmax as string]: flag(logSoftmax),
      });
    }
    if (this.graph.region) {
      const region = parts.region ?? { weights: new Float32Array(batch), classes: 1, mask: undefined, predicted: 0 };
      const mask = region.mask ?? EMPTY_MASK;
      const plane = mask.width * mask.height;
      const masks = new Float32Array(batch * plane);
      for (let b = 0; b < batch; b++) for (let p = 0; p < plane; p++) masks[b * plane + p] = (mask.data[p] as number) !== 0 ? 1 : 0;
      Object.assign(feeds, {
        [this.graph.region.classWeights]: new Tensor('float32', region.weights, [batch, region.classes]),
        [this.graph.region.mask]: new Tensor('float32', masks, [batch, 1, mask.height, mask.width]),
        [this.graph.region.predicted]: flag(region.predicted),
      });
    }
    let outputs: InferenceSession.OnnxValueMapType;
    try {
      outputs = await session.run(feeds);
    } catch (error) {
      if (strict && !this.classesSeen && this.classes !== undefined) throw error;
      throw this.explainFailure(input, (error as Error).message);
    }
    // Each output read once, then released; a name asked twice (the output as a target) gets the same array.
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
    const output = take(this.graph.output);
    if (this.outputKind !== 'other') {
      this.classes ??= output.shape[1];
      this.classesSeen = true;
    }
    return {
      output,
      targets: this.graph.targets.map((t) => ({
        activation: t.activation ? take(t.activation) : undefined,
        gradient: take(t.gradient),
      })),
    };
  }

  /** ONNX Runtime's failure in one line, with the fix where the model was exported for one size. */
  private explainFailure(input: FloatArray, message: string): RuntimeFailure {
    const first = message.split('\n')[0]?.slice(0, 240) ?? '';
    const [, , h, w] = input.shape as [number, number, number, number];
    const exported = this.graph.exportedSize;
    if (exported && (exported[0] !== h || exported[1] !== w)) {
      const node = /node\. Name:'([^']+)'/i.exec(first)?.[1] ?? /\(([^)]+)\)/.exec(first)?.[1];
      return new RuntimeFailure(
        `the model was exported for ${exported[0]} x ${exported[1]} inputs and ${node ? `node '${node}'` : 'a node'} fixes that size, so it cannot run at ${h} x ${w}; re-export with torch.onnx.export(..., dynamic_axes={'${this.graph.input}': {0: 'batch', 2: 'height', 3: 'width'}}) or keep to that size: 'resolutions' ${exported[0]}`,
      );
    }
    const hint =
      Math.min(h, w) < 64 ? "the size is likely too small for its strides and pooling: use larger 'resolutions'" : 'check the input';
    return new RuntimeFailure(`the model cannot run on a ${h} x ${w} input (ONNX Runtime: ${first}); ${hint}`);
  }

  /** False once the model has shown it cannot run a batch (its graph bakes in batch 1). */
  private batching = true;

  /**
   * Runs several same-sized images: stacked into one batch where the model allows it, else one at a
   * time. Returns one pass per image (views into the batch's outputs).
   */
  runEach(inputs: FloatArray[], classIndex: number | null, target?: Target): Promise<GradientPass[]> {
    return this.stacked(inputs, (input) => this.run(input, classIndex, target));
  }

  /** Each image's output from passes with no seed (nothing back-propagated): forward passes, stacked where the model allows. */
  async outputs(inputs: FloatArray[]): Promise<FloatArray[]> {
    if (!this.session) throw new CamerasError('this explainer was disposed; create a new one');
    return (await this.stacked(inputs, (input) => this.pass(input, {}))).map((pass) => pass.output);
  }

  private async stacked(inputs: FloatArray[], one: (input: FloatArray) => Promise<GradientPass>): Promise<GradientPass[]> {
    if (inputs.length === 1 || !this.batching) {
      const passes: GradientPass[] = [];
      for (const input of inputs) passes.push(await one(input));
      return passes;
    }
    const [, ...rest] = (inputs[0] as FloatArray).shape;
    const each = (inputs[0] as FloatArray).data.length;
    const stacked = new Float32Array(each * inputs.length);
    for (const [i, input] of inputs.entries()) stacked.set(input.data, i * each);
    let pass: GradientPass;
    try {
      pass = await one({ data: stacked, shape: [inputs.length, ...rest] });
    } catch (error) {
      // Only ONNX Runtime's refusal of the batch (a graph that bakes in batch 1) turns batching off; a refused target
      // or a wrong gradient function is the caller's to hear.
      if (error instanceof CamerasError && !(error instanceof RuntimeFailure)) throw error;
      this.batching = false;
      return this.stacked(inputs, one);
    }
    const slice = (t: FloatArray, i: number): FloatArray => {
      const size = t.data.length / inputs.length;
      return { data: t.data.subarray(i * size, (i + 1) * size), shape: [1, ...t.shape.slice(1)] };
    };
    return inputs.map((_, i) => ({
      output: slice(pass.output, i),
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
