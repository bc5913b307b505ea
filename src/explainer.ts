import type { InferenceSession } from 'onnxruntime-common';
import { FusionEngine } from './engine/fusion.js';
import { GradientSession } from './engine/gradient-session.js';
import { resizeInput } from './engine/resize.js';
import { type OrtRuntime, QUIET, type SessionCache } from './engine/runtime.js';
import { validateImageTensor } from './engine/scales.js';
import { checkClass, checkTarget, type Target, targetName } from './engine/scores.js';
import { CamerasError } from './errors.js';
import type { FloatArray } from './io/npy.js';
import type { CamOptions } from './methods/base-cam.js';
import type { CamerasMethodOptions } from './methods/cameras.js';
import type { EigenCamOptions } from './methods/eigencam.js';
import type { IntegratedGradientsOptions } from './methods/integrated-gradients.js';
import type { CommonOptions, ExplainResult, MethodContext, MethodOutput, NoiseOptions, SaliencyMethod } from './methods/method.js';
import { noiseTunnel } from './methods/noise-tunnel.js';
import { methodByName } from './methods/registry.js';
import { logitsOf } from './onnx/autodiff.js';
import { OnnxGraph } from './onnx/graph.js';
import { buildHeadModel } from './onnx/head.js';
import { defaultLayer, type Layer, resolveLayer } from './onnx/layers.js';
import { isOutline, outlineModel, requireWholeModel } from './onnx/outline.js';

/** A session built on first use: kept once made, forgotten if making it failed, so the next use tries again. */
function retried<T>(making: Promise<T>, forget: () => void): Promise<T> {
  making.catch(forget);
  return making;
}

export interface ExplainerConfig {
  /** The ONNX model's bytes. */
  model: Uint8Array;
  /** Target layer: torch module path (`layer4`), node name or tensor name; default: the last layer before global pooling. */
  layer?: string;
  /** Intra-op threads for ONNX Runtime; default: all cores. */
  threads?: number;
  /** Name used in messages, e.g. the model's path. */
  source?: string;
  /**
   * MaxPool back-propagates through its Indices output (default, fastest) or, with false, by comparing windows
   * with the pooled output: the same gradients, for runtimes whose MaxPool has no Indices (onnxruntime-web's WebGPU).
   */
  maxPoolIndices?: boolean;
  /** ONNX Runtime session options passed as they are, e.g. `{ executionProviders: ['webgpu', 'wasm'] }` in a browser. */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Keeps ONNX Runtime's optimised gradient graphs between processes (the CLI and `createExplainer` give one). */
  sessionCache?: SessionCache;
  /**
   * Reads the model's bytes again. With it, the explainer keeps only the model's outline (`outlineModel`) once
   * its session exists and reads the whole model through this when it builds another session that the cache does
   * not hold, so a large model's weights are held once, by ONNX Runtime. `model` may then be the outline itself.
   */
  loadModel?: () => Promise<Uint8Array>;
}

/**
 * Options of `explain`: the method, what every method takes (class, target, raw, smooth, onProgress) and each
 * method's own options. An option the chosen method does not take is refused by name.
 */
export type ExplainOptions = CommonOptions &
  CamerasMethodOptions &
  CamOptions &
  EigenCamOptions &
  IntegratedGradientsOptions &
  NoiseOptions & {
    /** A registered method's name (default `cameras`, see `METHODS`) or a method object of your own. */
    method?: string | SaliencyMethod<object>;
  };

/** Options every method takes; the rest must be in the method's own list. */
const COMMON_OPTIONS = new Set(['method', 'classIndex', 'target', 'raw', 'smooth', 'onProgress', 'batch']);

function chooseMethod(options: ExplainOptions): SaliencyMethod<object> {
  const method = options.method ?? 'cameras';
  return typeof method === 'string' ? methodByName(method) : method;
}

/** Refuses an option the method cannot honour, naming both. */
function checkOptions(method: SaliencyMethod<object>, options: ExplainOptions, batch: boolean): void {
  const own = new Set<string>(method.options);
  for (const [key, value] of Object.entries(options)) {
    // Off (false) asks nothing of a method; only an option that would change its result must be honoured.
    if (value === undefined || value === false || COMMON_OPTIONS.has(key) || own.has(key)) continue;
    throw new CamerasError(
      `method '${method.name}' does not take option '${key}'; it takes: ${[...own].map((o) => `'${o}'`).join(', ') || 'only the common options'}`,
    );
  }
  if (batch && !method.computeBatch) throw new CamerasError(`method '${method.name}' does not stack images ('batch'); leave it off`);
  if (options.smooth) {
    if (batch) throw new CamerasError("'batch' and 'smooth' do not combine; leave one off");
    if (method.smoothed)
      throw new CamerasError(
        `method '${method.name}' already averages over noise; set its own samples, noise and seed instead of 'smooth'`,
      );
    if (options.perScale) throw new CamerasError("'perScale' and 'smooth' do not combine: the noisy copies' scale maps are not averaged");
  }
}

/**
 * Explains one classifier at one target layer with any registered method. Building it compiles the gradient
 * graph and an ONNX Runtime session once; every `explain` call after that reuses them for any method, class,
 * target and scale. The runtime is a parameter, so the same code runs on onnxruntime-node and onnxruntime-web.
 */
export class Explainer {
  readonly layer: Layer;
  /** Channels the model's input expects, when the model declares them. */
  readonly inputChannels: number | undefined;
  private readonly session: GradientSession;
  private readonly fusion: FusionEngine;
  private inputSession: Promise<GradientSession> | undefined;
  private logitsSession: Promise<GradientSession> | undefined;
  private headSession: Promise<{ run: (activations: FloatArray) => Promise<Float32Array>; release: () => Promise<void> }> | undefined;
  private readonly context: MethodContext;

  private constructor(
    layer: Layer,
    session: GradientSession,
    inputChannels: number | undefined,
    private readonly runtime: OrtRuntime,
    private readonly graph: OnnxGraph,
    private readonly config: ExplainerConfig,
  ) {
    this.layer = layer;
    this.session = session;
    this.fusion = new FusionEngine(runtime, config.threads);
    this.inputChannels = inputChannels;
    this.context = {
      layer: session,
      inputGradients: () => this.inputGradients(),
      forward: async (inputs) => (await (await this.forwardSession()).runEach(inputs, null)).map((pass) => pass.logits.data),
      head: async () => (await this.head()).run,
      fuseSums: (scales, size) => this.fusion.fuseSums(scales, size),
    };
  }

  static async create(runtime: OrtRuntime, config: ExplainerConfig): Promise<Explainer> {
    const graph = OnnxGraph.fromBytes(config.model, config.source);
    if (config.layer !== undefined && config.layer.trim() === '')
      throw new CamerasError("the layer name is empty; give one ('cameras layers' lists them) or leave it out for the default");
    const layer = config.layer ? resolveLayer(graph, config.layer) : defaultLayer(graph);
    const input = graph.inputNames[0];
    const channels = input ? graph.declaredShape(input)?.[1] : undefined;
    const session = await GradientSession.create(runtime, graph, [layer.tensor], {
      threads: config.threads,
      runtimeOptions: config.sessionOptions,
      modelBytes: isOutline(graph.model) ? config.loadModel : config.model,
      sessionCache: config.sessionCache,
      maxPoolIndices: config.maxPoolIndices,
    });
    // With a way to read the model again, only its outline is kept: the weights are ONNX Runtime's to hold.
    const kept = config.loadModel && !isOutline(graph.model) ? OnnxGraph.fromBytes(outlineModel(config.model), config.source) : graph;
    const held = config.loadModel ? { ...config, model: new Uint8Array(0) } : config;
    return new Explainer(layer, session, channels !== undefined && channels > 0 ? channels : undefined, runtime, kept, held);
  }

  /** The model's bytes: as given, or read again when only the outline is kept. */
  private modelBytes(): Uint8Array | (() => Promise<Uint8Array>) {
    return this.config.loadModel ?? this.config.model;
  }

  /** Built on first use: the session that differentiates with respect to the input pixels. */
  private inputGradients(): Promise<GradientSession> {
    this.inputSession ??= retried(
      GradientSession.create(this.runtime, this.graph, [this.graph.inputNames[0] as string], {
        threads: this.config.threads,
        runtimeOptions: this.config.sessionOptions,
        modelBytes: this.modelBytes(),
        sessionCache: this.config.sessionCache,
        maxPoolIndices: this.config.maxPoolIndices,
      }),
      () => {
        this.inputSession = undefined;
      },
    );
    return this.inputSession;
  }

  /** Built on first use: the model with the logits as the only target, a forward pass with a trivial backward. */
  private forwardSession(): Promise<GradientSession> {
    this.logitsSession ??= retried(
      GradientSession.create(this.runtime, this.graph, [logitsOf(this.graph)], {
        threads: this.config.threads,
        runtimeOptions: this.config.sessionOptions,
        modelBytes: this.modelBytes(),
        sessionCache: this.config.sessionCache,
      }),
      () => {
        this.logitsSession = undefined;
      },
    );
    return this.logitsSession;
  }

  /** Built on first use: the network from the target layer to the logits (Ablation-CAM runs it). */
  private head() {
    this.headSession ??= retried(
      (async () => {
        const source = this.modelBytes();
        const bytes = typeof source === 'function' ? await source() : source;
        if (!this.config.loadModel) requireWholeModel(this.graph.model);
        const head = buildHeadModel(bytes, this.layer.tensor);
        const session = await this.runtime.InferenceSession.create(head.bytes, { graphOptimizationLevel: 'all', ...QUIET });
        const run = async (activations: FloatArray) => {
          const out = await session.run({ [this.layer.tensor]: new this.runtime.Tensor('float32', activations.data, activations.shape) });
          return out[head.logits]?.data as Float32Array;
        };
        return { run, release: () => session.release() };
      })(),
      () => {
        this.headSession = undefined;
      },
    );
    return this.headSession;
  }

  /** Number of classes, when the model declares it. */
  get classCount(): number | undefined {
    return this.session.classCount;
  }

  /** A saliency map of a normalised NCHW float32 tensor `[1, C, H, W]`; CAMERAS unless `method` says otherwise. */
  async explain(input: FloatArray, options: ExplainOptions = {}): Promise<ExplainResult> {
    return (await this.explainBatch([input], options))[0] as ExplainResult;
  }

  /**
   * Many images, each with the map it gets alone. With `batch` (CAMERAS), each scale stacks images into one
   * ONNX Runtime call where the model and memory allow: on a 2-core CPU that measured no faster (intra-op
   * threads already keep both cores busy), so it is off by default.
   */
  async explainBatch(inputs: FloatArray[], options: ExplainOptions & { batch?: boolean } = {}): Promise<ExplainResult[]> {
    for (const input of inputs) validateImageTensor(input, this.inputChannels);
    const method = chooseMethod(options);
    checkOptions(method, options, !!options.batch);
    const requested = options.classIndex ?? null;
    if (requested !== null) checkClass(requested, this.session.classCount);
    checkTarget(options.target, requested, this.session.classCount);
    let outputs: MethodOutput[];
    if (method.computeBatch && !options.smooth) {
      outputs = await method.computeBatch(this.context, inputs, options);
    } else {
      outputs = [];
      for (const input of inputs) {
        outputs.push(
          options.smooth
            ? await noiseTunnel(method, this.context, input, options, options.smooth)
            : await method.compute(this.context, input, options),
        );
      }
    }
    const contrast = typeof options.target === 'object' && 'contrast' in options.target ? options.target.contrast : undefined;
    for (const out of outputs) {
      if (out.classIndex === contrast)
        throw new CamerasError(
          `the top-1 class ${contrast} is the contrast class, so there is nothing to explain; give a 'classIndex' or contrast with another class`,
        );
    }
    return outputs.map((out) => {
      const { raw, scaleRaws, height, width, ...facts } = out;
      const saliency = method.postprocess(raw, height, width, options);
      return {
        ...saliency,
        method: method.name,
        target: targetName(options.target),
        ...facts,
        ...(scaleRaws
          ? { scaleMaps: scaleRaws.map((s) => ({ resolution: s.resolution, map: method.postprocess(s.raw, height, width, options) })) }
          : {}),
        ...(options.raw ? { raw } : {}),
      };
    });
  }

  /** Each input's logits from forward passes only, stacked into few ONNX Runtime calls where the model allows (metrics run it). */
  async forward(inputs: FloatArray[]): Promise<Float32Array[]> {
    for (const input of inputs) validateImageTensor({ ...input, shape: [1, ...input.shape.slice(1)] }, this.inputChannels);
    return this.context.forward(inputs);
  }

  /**
   * The input gradient of a target (default the class's logit) and the logits, in one forward and backward pass:
   * what gradient-based attacks step along.
   */
  async inputGradient(input: FloatArray, classIndex: number, target?: Target): Promise<{ gradient: Float32Array; logits: Float32Array }> {
    validateImageTensor(input, this.inputChannels);
    const pass = await (await this.inputGradients()).run(input, classIndex, target);
    return { gradient: pass.targets[0]?.gradient.data as Float32Array, logits: pass.logits.data };
  }

  /** The target layer's activation for one image at its own size (one forward pass). */
  async layerActivation(input: FloatArray): Promise<FloatArray> {
    validateImageTensor(input, this.inputChannels);
    const activation = (await this.session.run(input, null)).targets[0]?.activation;
    if (!activation) throw new CamerasError('the target is the model input, which has no activation');
    return activation;
  }

  /** The model's logits for one image, resized (bicubic, as CAMERAS does) to `size` first when given. */
  async logits(input: FloatArray, size?: number): Promise<Float32Array> {
    validateImageTensor(input, this.inputChannels);
    return (await this.session.run(size === undefined ? input : resizeInput(input, size), null)).logits.data;
  }

  /** Frees the ONNX Runtime sessions. */
  async dispose(): Promise<void> {
    await this.session.dispose();
    await this.fusion.dispose();
    // A session that failed to build has nothing to release.
    await this.inputSession?.then(
      (s) => s.dispose(),
      () => undefined,
    );
    await this.logitsSession?.then(
      (s) => s.dispose(),
      () => undefined,
    );
    await this.headSession?.then(
      (s) => s.release(),
      () => undefined,
    );
  }
}
