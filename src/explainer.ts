import type { InferenceSession } from 'onnxruntime-common';
import { FusionEngine } from './engine/fusion.js';
import { GradientSession } from './engine/gradient-session.js';
import { type LayerView, viewAsNchw, viewBack } from './engine/layer-view.js';
import { resizeInput } from './engine/resize.js';
import { type OrtRuntime, ortSessionOptions, type SessionCache } from './engine/runtime.js';
import { validateImageTensor } from './engine/scales.js';
import { checkClass, checkTarget, isRegionTarget, type Target, targetName } from './engine/scores.js';
import { CamerasError } from './errors.js';
import type { FloatArray } from './io/npy.js';
import { type PreprocessPreset, preprocess, presetByName, type RgbImage } from './io/preprocess.js';
import type {
  CommonOptions,
  ExplainResult,
  MethodContext,
  MethodOutput,
  NoiseOptions,
  PassRunner,
  SaliencyMethod,
} from './methods/method.js';
import { noiseTunnel } from './methods/noise-tunnel.js';
import { DEFAULT_METHOD, type MethodOptions, methodByName } from './methods/registry.js';
import { detectLayerView, type ModelProfile, type ProfileOverrides, resolveProfile } from './models/profile.js';
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
  /**
   * What the model is: preprocessing, input size, default resolutions, labels, layer, layer view and explained output
   * (see `ModelProfile`). What is not given is inferred from the graph; `createExplainer` fills a zoo model's.
   */
  profile?: ProfileOverrides;
  /** Target layer: torch module path (`layer4`), node name or tensor name; default: the profile's, else the last layer before global pooling. */
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
 * Options of `explain`: the method, what every method takes (class, target, output, raw, smooth, onProgress) and
 * the registered methods' own options (`MethodOptions`, derived from the registry). An option the chosen method
 * does not take is refused by name.
 */
export type ExplainOptions = CommonOptions &
  MethodOptions & {
    /** A registered method's name (default `cameras`, see `METHODS`) or a method object of your own. */
    method?: string | SaliencyMethod<object>;
  };

/** Options every method takes; the rest must be in the method's own list. */
const COMMON_OPTIONS = new Set(['method', 'classIndex', 'target', 'output', 'raw', 'smooth', 'onProgress', 'batch']);

function chooseMethod(options: ExplainOptions): SaliencyMethod<object> {
  const method = options.method ?? DEFAULT_METHOD;
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
    if ((options as { perScale?: boolean }).perScale)
      throw new CamerasError("'perScale' and 'smooth' do not combine: the noisy copies' scale maps are not averaged");
  }
}

/** The class a request explains: the given one, or a region's (which must agree). */
function requestedClass(options: CommonOptions): number | null {
  const given = options.classIndex ?? null;
  if (!isRegionTarget(options.target)) return given;
  if (given !== null && given !== options.target.segment)
    throw new CamerasError(`the region is of class ${options.target.segment} but 'classIndex' is ${given}; give one class`);
  return options.target.segment;
}

/**
 * Explains one model at one target layer with any registered method. Building it compiles the gradient graph and
 * an ONNX Runtime session once; every `explain` call after that reuses them for any method, class, target and
 * scale. What the model is (its `profile`: preprocessing, sizes, labels, layer view, outputs) is decided here once,
 * so every entry point explains it the same way. The runtime is a parameter, so the same code runs on
 * onnxruntime-node and onnxruntime-web.
 */
export class Explainer {
  readonly layer: Layer;
  /** Channels the model's input expects, when the model declares them. */
  readonly inputChannels: number | undefined;
  private readonly fusion: FusionEngine;
  /** Every ONNX Runtime session, by kind, tensor and output: built once, on first use (the layer's at creation). */
  private readonly sessions = new Map<string, Promise<GradientSession>>();
  private headSession: Promise<{ run: (activations: FloatArray) => Promise<FloatArray>; release: () => Promise<void> }> | undefined;
  private profileValue: ModelProfile;
  /** The layer view in use, once the first pass has shown the layer's rank (where the profile declares none). */
  private view: LayerView | undefined;

  private constructor(
    layer: Layer,
    profile: ModelProfile,
    inputChannels: number | undefined,
    private readonly runtime: OrtRuntime,
    private readonly graph: OnnxGraph,
    private readonly config: ExplainerConfig,
  ) {
    this.layer = layer;
    this.profileValue = profile;
    this.view = profile.layerView;
    this.fusion = new FusionEngine(runtime, { threads: config.threads, runtimeOptions: config.sessionOptions });
    this.inputChannels = inputChannels;
  }

  static async create(runtime: OrtRuntime, config: ExplainerConfig): Promise<Explainer> {
    const graph = OnnxGraph.fromBytes(config.model, config.source);
    if (config.layer !== undefined && config.layer.trim() === '')
      throw new CamerasError("the layer name is empty; give one ('cameras layers' lists them) or leave it out for the default");
    const profile = resolveProfile(graph, { ...config.profile, ...(config.layer ? { layer: config.layer } : {}) }, config.source);
    const layer = profile.layer ? resolveLayer(graph, profile.layer) : defaultLayer(graph);
    const input = graph.inputNames[0];
    const channels = input ? graph.declaredShape(input)?.[1] : undefined;
    // With a way to read the model again, only its outline is kept: the weights are ONNX Runtime's to hold.
    const kept = config.loadModel && !isOutline(graph.model) ? OnnxGraph.fromBytes(outlineModel(config.model), config.source) : graph;
    const held = config.loadModel ? { ...config, model: new Uint8Array(0) } : config;
    const explainer = new Explainer(layer, profile, channels !== undefined && channels > 0 ? channels : undefined, runtime, kept, held);
    // The layer's session is built now (the one every method needs), from the bytes in hand.
    try {
      explainer.layerSessionValue = await explainer.session(layer.tensor, profile.output, {
        bytes: isOutline(graph.model) ? config.loadModel : config.model,
      });
    } catch (error) {
      await explainer.fusion.dispose();
      throw error;
    }
    return explainer;
  }

  /** What the model is: preprocessing, input size, resolutions, labels, layer, layer view and outputs. */
  get profile(): ModelProfile {
    return this.profileValue;
  }

  /** The profile's preprocessing preset. */
  get preset(): PreprocessPreset {
    return presetByName(this.profileValue.preprocess);
  }

  /** An image's pixels as the model's input: the profile's preset and input size (OpenCV's bilinear resize). */
  preprocess(image: RgbImage): FloatArray {
    return preprocess(image, this.preset, this.profileValue.inputSize);
  }

  /** Gives a model that declares none the labels assumed for it (ImageNet's for a plain 1000-class model). */
  assumeLabels(labels: readonly string[]): void {
    if (this.profileValue.labels) return;
    this.profileValue = { ...this.profileValue, labels, labelsAssumed: true };
  }

  /** The model's bytes: as given, or read again when only the outline is kept. */
  private modelBytes(): Uint8Array | (() => Promise<Uint8Array>) {
    return this.config.loadModel ?? this.config.model;
  }

  /**
   * The one session factory: a gradient session from `tensor` (a layer, the input, or the output itself for plain
   * forward passes) back from `output`, with the explainer's threads, ONNX Runtime options, MaxPool rule and cache.
   */
  private session(
    tensor: string,
    output: string,
    source: { bytes: Uint8Array | (() => Promise<Uint8Array>) | undefined } = { bytes: this.modelBytes() },
  ): Promise<GradientSession> {
    const key = `${tensor}\u0000${output}`;
    let found = this.sessions.get(key);
    if (!found) {
      found = retried(
        GradientSession.create(this.runtime, this.graph, [tensor], {
          threads: this.config.threads,
          runtimeOptions: this.config.sessionOptions,
          modelBytes: source.bytes,
          sessionCache: this.config.sessionCache,
          maxPoolIndices: this.config.maxPoolIndices,
          output,
        }),
        () => this.sessions.delete(key),
      );
      this.sessions.set(key, found);
    }
    return found;
  }

  /** The session of the target layer for the default output, built at creation. */
  private layerSessionValue: GradientSession | undefined;

  /** The layer's passes with its activation and gradient laid out `[N, C, H, W]` by the layer view. */
  private viewed(session: GradientSession): PassRunner {
    const view = (pass: Awaited<ReturnType<GradientSession['run']>>, input: FloatArray) => {
      const target = pass.targets[0];
      if (!target?.activation) return pass;
      this.view ??= detectLayerView(this.graph, this.layer.tensor, target.activation.shape.length);
      if (this.view.kind === 'nchw') return pass;
      const [, , height, width] = input.shape as [number, number, number, number];
      return {
        ...pass,
        targets: [
          {
            activation: viewAsNchw(this.view, target.activation, height, width),
            gradient: viewAsNchw(this.view, target.gradient, height, width),
            native: target.activation,
          },
        ],
      };
    };
    return {
      run: async (input, classIndex, target) => view(await session.run(input, classIndex, target), input),
      runEach: async (inputs, classIndex, target) =>
        (await session.runEach(inputs, classIndex, target)).map((pass, i) => view(pass, inputs[i] as FloatArray)),
    };
  }

  /** The network from the target layer to `output` (Ablation-CAM runs it), on the explainer's session options. */
  private head(output: string) {
    if (output !== this.profileValue.output)
      throw new CamerasError(`a method that runs the network's head explains the default output '${this.profileValue.output}' only`);
    this.headSession ??= retried(
      (async () => {
        const source = this.modelBytes();
        const bytes = typeof source === 'function' ? await source() : source;
        if (!this.config.loadModel) requireWholeModel(this.graph.model);
        const head = buildHeadModel(bytes, this.layer.tensor, output);
        const session = await this.runtime.InferenceSession.create(head.bytes, {
          graphOptimizationLevel: 'all',
          ...ortSessionOptions({ threads: this.config.threads, runtimeOptions: this.config.sessionOptions }),
        });
        const run = async (activations: FloatArray): Promise<FloatArray> => {
          const out = await session.run({ [this.layer.tensor]: new this.runtime.Tensor('float32', activations.data, activations.shape) });
          const value = out[head.output];
          if (!value) throw new Error(`missing output ${head.output}`);
          return { data: value.data as Float32Array, shape: [...value.dims] };
        };
        return { run, release: () => session.release() };
      })(),
      () => {
        this.headSession = undefined;
      },
    );
    return this.headSession;
  }

  /** What methods run on, for one output. */
  private async context(output: string): Promise<MethodContext> {
    return {
      layer: this.viewed(await this.session(this.layer.tensor, output)),
      inputGradients: async () => this.session(this.graph.inputNames[0] as string, output),
      // The output itself as the target: a forward pass with a trivial backward.
      forward: async (inputs) => (await this.session(logitsOf(this.graph, output), output)).outputs(inputs),
      head: async () => {
        const head = await this.head(output);
        return (activations, native) => head.run(this.view ? viewBack(this.view, activations, native) : activations);
      },
      fuseSums: (scales, size) => this.fusion.fuseSums(scales, size),
      resolutions: this.profileValue.resolutions,
    };
  }

  /** Number of classes of the default output (a classifier's classes, a segmenter's K), when known. */
  get classCount(): number | undefined {
    return this.layerSessionValue?.classCount;
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
    const output = options.output ?? this.profileValue.output;
    if (!this.profileValue.outputs.some((o) => o.name === output))
      throw new CamerasError(
        `the model has no output '${output}'; its outputs: ${this.profileValue.outputs.map((o) => o.name).join(', ')}`,
      );
    const context = await this.context(output);
    const classes = (await this.session(this.layer.tensor, output)).classCount;
    const requested = requestedClass(options);
    if (requested !== null) checkClass(requested, classes);
    checkTarget(options.target, requested, classes);
    const asked = { ...options, classIndex: requested };
    let outputs: MethodOutput[];
    if (method.computeBatch && !options.smooth) {
      outputs = await method.computeBatch(context, inputs, asked);
    } else {
      outputs = [];
      for (const input of inputs) {
        outputs.push(
          options.smooth
            ? await noiseTunnel(method, context, input, asked, options.smooth as NoiseOptions)
            : await method.compute(context, input, asked),
        );
      }
    }
    const contrast = typeof options.target === 'object' && 'contrast' in options.target ? options.target.contrast : undefined;
    for (const out of outputs) {
      if (contrast !== undefined && out.classIndex === contrast)
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
        output,
        ...facts,
        ...(scaleRaws
          ? { scaleMaps: scaleRaws.map((s) => ({ resolution: s.resolution, map: method.postprocess(s.raw, height, width, options) })) }
          : {}),
        ...(options.raw ? { raw } : {}),
      };
    });
  }

  /** Each input's default output (a classifier's logits) from forward passes only, stacked into few ONNX Runtime calls where the model allows (metrics run it). */
  async forward(inputs: FloatArray[]): Promise<Float32Array[]> {
    for (const input of inputs) validateImageTensor({ ...input, shape: [1, ...input.shape.slice(1)] }, this.inputChannels);
    return (await (await this.context(this.profileValue.output)).forward(inputs)).map((output) => output.data);
  }

  /**
   * The input gradient of a target (default the class's logit) and the logits, in one forward and backward pass:
   * what gradient-based attacks step along.
   */
  async inputGradient(input: FloatArray, classIndex: number, target?: Target): Promise<{ gradient: Float32Array; logits: Float32Array }> {
    validateImageTensor(input, this.inputChannels);
    const session = await this.session(this.graph.inputNames[0] as string, this.profileValue.output);
    const pass = await session.run(input, classIndex, target);
    return { gradient: pass.targets[0]?.gradient.data as Float32Array, logits: pass.output.data };
  }

  /** The model's default output (a classifier's logits) for one image, resized (bicubic, as CAMERAS does) to `size` first when given. */
  async logits(input: FloatArray, size?: number): Promise<Float32Array> {
    validateImageTensor(input, this.inputChannels);
    const session = this.layerSessionValue as GradientSession;
    return ((await session.outputs([size === undefined ? input : resizeInput(input, size)]))[0] as FloatArray).data;
  }

  /** Frees the ONNX Runtime sessions. */
  async dispose(): Promise<void> {
    await this.fusion.dispose();
    // A session that failed to build has nothing to release.
    for (const session of this.sessions.values())
      await session.then(
        (s) => s.dispose(),
        () => undefined,
      );
    this.sessions.clear();
    await this.headSession?.then(
      (s) => s.release(),
      () => undefined,
    );
  }
}
