import type { InferenceSession } from 'onnxruntime-common';
import {
  type Box,
  boxIou,
  checkBox,
  clipDetections,
  type Detection,
  type DetectionLayout,
  type DetectionSpec,
  type DetectionTarget,
  detect,
  detectionClasses,
  detectionLayout,
  detectionTarget,
  type NmsOptions,
} from './engine/detections.js';
import { FusionEngine } from './engine/fusion.js';
import { GradientSession } from './engine/gradient-session.js';
import { type LayerView, tokenGrid, viewAsNchw, viewBack } from './engine/layer-view.js';
import { checkMemory, estimatePeakBytes } from './engine/memory.js';
import { resizeInput } from './engine/resize.js';
import { type OrtRuntime, ortSessionOptions, type SessionCache } from './engine/runtime.js';
import { validateImageTensor } from './engine/scales.js';
import { checkClass, checkTarget, type InputSize, isOutputTarget, isRegionTarget, type Target, targetName } from './engine/scores.js';
import { CamerasError } from './errors.js';
import type { FloatArray } from './io/npy.js';
import { blackPixel, type PreprocessPreset, preprocess, presetByName, type RgbImage } from './io/preprocess.js';
import type {
  AttentionRunner,
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
import { checkOutput, checkSizes, detectLayerView, type ModelProfile, type ProfileOverrides, resolveProfile } from './models/profile.js';
import { attentionMaps } from './onnx/attention.js';
import { logitsOf } from './onnx/autodiff.js';
import { type ExternalData, inlineExternalData } from './onnx/external-data.js';
import { OnnxGraph } from './onnx/graph.js';
import { buildHeadModel } from './onnx/head.js';
import { defaultLayer, type Layer, resolveLayer } from './onnx/layers.js';
import { isOutline, outlineModel, requireWholeModel } from './onnx/outline.js';

/** A session built on first use under `key`: kept once made, forgotten if making it failed, so the next use tries again. */
function built<T>(cache: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let found = cache.get(key);
  if (!found) {
    found = make();
    cache.set(key, found);
    found.catch(() => cache.delete(key));
  }
  return found;
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
  /**
   * The files a model exported with external data keeps its weights in (`model.onnx.data`), by the location the model
   * names, or a function reading one: they are read into the model. Opening a model by its path reads them itself.
   */
  externalData?: ExternalData;
  /**
   * Bytes a run may take at its peak: a run whose estimate (`estimatePeakBytes`) is over it is refused before it
   * starts. Default: no limit (the Node entry point sets 75% of the machine's memory, or $CAMERAS_MEMORY_BUDGET GB).
   */
  memoryBudget?: number;
  /**
   * Labels to assume for a model whose profile has none, given its class count (learnt from one small pass where the
   * model does not declare it); the profile then says `labelsAssumed`. The Node entry point gives ImageNet's for 1000.
   */
  assumeLabels?: (classCount: number) => Promise<readonly string[] | undefined> | readonly string[] | undefined;
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
    if (options.perScale) throw new CamerasError("'perScale' and 'smooth' do not combine: the noisy copies' scale maps are not averaged");
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
  /** The explained output's shape on one probe pass at the input size (`detectionFormat`). */
  private probedShape: Promise<readonly number[]> | undefined;
  /** The network's head from the layer, per output (Ablation-CAM), built on first use like the sessions. */
  private readonly heads = new Map<
    string,
    Promise<{ run: (activations: FloatArray) => Promise<FloatArray>; release: () => Promise<void> }>
  >();
  private profileValue: ModelProfile;

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
    this.fusion = new FusionEngine(runtime, { threads: config.threads, runtimeOptions: config.sessionOptions });
    this.inputChannels = inputChannels;
  }

  static async create(runtime: OrtRuntime, given: ExplainerConfig): Promise<Explainer> {
    const { externalData, ...rest } = given;
    const config = externalData ? { ...rest, model: await inlineExternalData(given.model, externalData, given.source) } : rest;
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
      if (!profile.labels && config.assumeLabels) {
        const labels = await config.assumeLabels(await explainer.countClasses());
        if (labels) explainer.profileValue = { ...profile, labels, labelsAssumed: true };
      }
    } catch (error) {
      await explainer.dispose();
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

  /** The model's bytes: as given, or read again when only the outline is kept. */
  private modelBytes(): Uint8Array | (() => Promise<Uint8Array>) {
    return this.config.loadModel ?? this.config.model;
  }

  /**
   * The one session factory: a gradient session from `tensor` (a layer, the input, or the output itself for plain
   * forward passes) back from `output`, with the explainer's threads, ONNX Runtime options, MaxPool rule and cache.
   */
  private session(
    tensor: string | string[],
    output: string,
    source: { bytes: Uint8Array | (() => Promise<Uint8Array>) | undefined } = { bytes: this.modelBytes() },
  ): Promise<GradientSession> {
    const tensors = typeof tensor === 'string' ? [tensor] : tensor;
    return built(this.sessions, `${tensors.join('\u0001')}\u0000${output}`, () =>
      GradientSession.create(this.runtime, this.graph, tensors, {
        threads: this.config.threads,
        runtimeOptions: this.config.sessionOptions,
        modelBytes: source.bytes,
        sessionCache: this.config.sessionCache,
        maxPoolIndices: this.config.maxPoolIndices,
        output,
        positionResample: this.profileValue.positionResample,
      }),
    );
  }

  /** The session of the target layer for the default output, built at creation. */
  private layerSessionValue: GradientSession | undefined;

  /** The layer's passes with its activation and gradient laid out `[N, C, H, W]` by the layer view. */
  private viewed(session: GradientSession): PassRunner {
    const view = (pass: Awaited<ReturnType<GradientSession['run']>>, input: FloatArray) => {
      const target = pass.targets[0];
      if (!target?.activation) return pass;
      // Where the profile declares no view, the first pass shows the layer's rank: the detected view becomes the profile's.
      if (!this.profileValue.layerView)
        this.profileValue = {
          ...this.profileValue,
          layerView: detectLayerView(this.graph, this.layer.tensor, target.activation.shape),
        };
      const declared = this.profileValue.layerView as LayerView;
      if (declared.kind === 'nchw') return pass;
      // The model's own patch size lays its tokens out at sizes that are not whole patch grids too.
      const view = declared.kind === 'tokens' && this.profileValue.patch ? { patch: this.profileValue.patch, ...declared } : declared;
      const [, , height, width] = input.shape as [number, number, number, number];
      return {
        ...pass,
        targets: [
          {
            activation: viewAsNchw(view, target.activation, height, width),
            gradient: viewAsNchw(view, target.gradient, height, width),
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
    return built(this.heads, output, async () => {
      const source = this.modelBytes();
      const bytes = typeof source === 'function' ? await source() : source;
      if (!this.config.loadModel) requireWholeModel(this.graph.model);
      const head = buildHeadModel(bytes, this.layer.tensor, output);
      const session = await this.runtime.InferenceSession.create(head.bytes, {
        graphOptimizationLevel: 'all',
        ...ortSessionOptions({ threads: this.config.threads, runtimeOptions: this.config.sessionOptions }),
      });
      // The last zeros fed for an input read only for its shape: Ablation-CAM's calls share one batch shape, so
      // they reuse it rather than each allocating a batch of images (52 MB for 16 at FCN's 520 px).
      let zeros: { key: string; data: Float32Array } | undefined;
      const run = async (activations: FloatArray, input?: FloatArray): Promise<FloatArray> => {
        const feeds = { [this.layer.tensor]: new this.runtime.Tensor('float32', activations.data, activations.shape) };
        // An input read for its shape only: zeros of its shape, one per edited activation.
        for (const name of head.shapeInputs) {
          if (!input) throw new Error(`the head reads the shape of '${name}': pass the input`);
          const shape = [activations.shape[0] as number, ...input.shape.slice(1)];
          const key = shape.join('x');
          if (zeros?.key !== key) zeros = { key, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
          feeds[name] = new this.runtime.Tensor('float32', zeros.data, shape);
        }
        const out = await session.run(feeds);
        const value = out[head.output];
        if (!value) throw new Error(`missing output ${head.output}`);
        return { data: value.data as Float32Array, shape: [...value.dims] };
      };
      return { run, release: () => session.release() };
    });
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
        const view = this.profileValue.layerView;
        return (activations, native, input) => head.run(view ? viewBack(view, activations, native) : activations, input);
      },
      fuseSums: (scales, size) => this.fusion.fuseSums(scales, size),
      resolutions: this.profileValue.resolutions,
      blackPixel: blackPixel(this.preset),
      attention: async () => this.attention(output),
    };
  }

  /** Passes that return each block's attention probabilities `[heads, T, T]` and their gradients, for `output`. */
  private async attention(output: string): Promise<AttentionRunner> {
    const maps = attentionMaps(this.graph);
    if (maps.length === 0)
      throw new CamerasError(
        `${this.config.source ?? 'the model'} has no attention (no Softmax weighting values after a query-key product); attention methods explain transformers: use a CAM method or cameras`,
      );
    const session = await this.session(maps, output);
    const view = this.profileValue.layerView;
    return {
      run: async (input, classIndex, target) => {
        const pass = await session.run(input, classIndex, target);
        const [, , height, width] = input.shape as [number, number, number, number];
        const blocks = pass.targets.map(({ activation, gradient }) => {
          const shape = gradient.shape;
          const tokens = shape[shape.length - 1] as number;
          const heads = gradient.data.length / (tokens * tokens);
          return {
            attention: { data: (activation as FloatArray).data, shape: [heads, tokens, tokens] },
            gradient: { data: gradient.data, shape: [heads, tokens, tokens] },
          };
        });
        const tokens = blocks.map((b) => b.attention.shape[2] as number);
        const count = tokens[0] as number;
        const prefix = view?.kind === 'tokens' ? view.prefix : undefined;
        const windowed = () =>
          new CamerasError(
            `the model's attention is not global over the image's patches (maps of ${[...new Set(tokens)].join(', ')} tokens for a ${height} x ${width} input: windowed, as Swin's); attention methods explain ViT and DeiT: use a CAM method or cameras`,
          );
        // Windows: blocks attend over other token counts, or over fewer tokens than the image has patches.
        const patch = this.profileValue.patch;
        if (tokens.some((t) => t !== count) || (patch && count < Math.floor(height / patch) * Math.floor(width / patch))) throw windowed();
        const grid = tokenGrid({ prefix, patch }, count, height, width);
        if (grid.prefix === 0)
          throw new CamerasError(
            "the model has no class token (its attention is over the patches alone): rollout and Chefer's method read the class token's row; use a CAM method or cameras",
          );
        return { output: pass.output, blocks, grid };
      },
    };
  }

  /** The default output's class count: declared, else learnt from one pass at the input size (0 where it has none). */
  private async countClasses(): Promise<number> {
    const session = this.layerSessionValue as GradientSession;
    if (session.classCount !== undefined) return session.classCount;
    const size = this.profileValue.inputSize;
    const channels = this.inputChannels ?? 3;
    const zeros = { data: new Float32Array(channels * size * size), shape: [1, channels, size, size] };
    const output = (await session.outputs([zeros]).catch(() => []))[0];
    return output && output.shape.length >= 2 ? (output.shape[1] as number) : 0;
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
    const output = checkOutput(this.profileValue.outputs, options.output ?? this.profileValue.output);
    const context = await this.context(output);
    const classes = (await this.session(this.layer.tensor, output)).classCount;
    const target = options.target;
    if (
      isOutputTarget(target) &&
      !target.gradient &&
      method.needs.some((n) => n === 'layer-gradient' || n === 'input-gradient' || n === 'attention-gradient')
    )
      throw new CamerasError(
        `method '${method.name}' follows the target's gradient; give the target a 'gradient' function (or use a method that only scores it: scorecam, ablationcam)`,
      );
    const requested = requestedClass(options);
    if (requested !== null) checkClass(requested, classes);
    checkTarget(options.target, requested, classes);
    const asked = { ...options, classIndex: requested };
    this.checkMemory(method, asked, inputs);
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

  /**
   * Refuses a run at input sizes the model does not compute right at (`checkSizes`), or whose largest pass would need
   * more memory than the budget allows (estimated from the graph).
   */
  private checkMemory(method: SaliencyMethod<object>, options: ExplainOptions, inputs: FloatArray[]): void {
    const [, channels, height, width] = (inputs[0] as FloatArray).shape as [number, number, number, number];
    const scales = method.multiResolution || (options as { multiScale?: boolean }).multiScale;
    const resolutions = (options as { resolutions?: readonly number[] }).resolutions ?? this.profileValue.resolutions;
    checkSizes(this.profileValue, scales ? resolutions : [height, width]);
    if (this.config.memoryBudget === undefined) return;
    const size = scales ? Math.max(...resolutions) : Math.max(height, width);
    const mapSize = scales ? (resolutions[0] as number) : Math.max(height, width);
    const attentionOutputs = method.needs.some((n) => n === 'attention' || n === 'attention-gradient');
    checkMemory(estimatePeakBytes(this.graph, { channels, size, mapSize, attentionOutputs }), this.config.memoryBudget, size);
  }

  /** Each input's default output (a classifier's logits) from forward passes only, stacked into few ONNX Runtime calls where the model allows (metrics run it). */
  async forward(inputs: FloatArray[]): Promise<Float32Array[]> {
    for (const input of inputs) validateImageTensor({ ...input, shape: [1, ...input.shape.slice(1)] }, this.inputChannels);
    return (await (await this.context(this.profileValue.output)).forward(inputs)).map((output) => output.data);
  }

  /**
   * The explained output's detection layout and class count: the profile's layout, else read from the output's shape
   * on one probe pass (an export rarely declares it); a one-line error where the output is not a detector's.
   */
  private async detectionFormat(): Promise<{ layout: DetectionLayout; classes: number }> {
    const declared = this.profileValue.outputs.find((o) => o.name === this.profileValue.output)?.shape;
    if (!this.profileValue.detectionLayout && declared && declared.length !== 3)
      throw new CamerasError(
        `output '${this.profileValue.output}' of ${this.profileValue.name} is [${declared.map((d) => (d > 0 ? d : '?')).join(', ')}], not a detector's predictions before NMS; explain a detector exported without NMS (or name its layout: detectionLayout, --layout)`,
      );
    // The probe's output shape is kept; what it means is read anew (a model that is no detector is not probed again).
    if (!this.probedShape) {
      const size = this.profileValue.inputSize;
      const channels = this.inputChannels ?? 3;
      const probe = { data: new Float32Array(channels * size * size), shape: [1, channels, size, size] };
      this.probedShape = this.context(this.profileValue.output)
        .then((context) => context.forward([probe]))
        .then(([output]) => (output as FloatArray).shape);
      this.probedShape.catch(() => {
        this.probedShape = undefined;
      });
    }
    const shape = await this.probedShape;
    const name = `output '${this.profileValue.output}' of ${this.profileValue.name}`;
    const layout = detectionLayout(shape, this.profileValue.detectionLayout, name);
    return { layout, classes: detectionClasses(shape, layout) };
  }

  /** The explained output's detection layout and class count where it is a detector's; undefined for other models. */
  async detector(): Promise<{ layout: DetectionLayout; classes: number } | undefined> {
    return this.detectionFormat().catch((error) => {
      // A layout named for an output it does not fit is the caller's mistake, said as it is.
      if (error instanceof CamerasError && !this.profileValue.detectionLayout) return undefined;
      throw error;
    });
  }

  /**
   * A detector's detections on one image: its explained output read with the profile's layout, through class-wise
   * NMS (score = objectness x best class score above 0.25, IoU 0.45, at most 100: `NmsOptions`), best first; boxes
   * in the input's pixels, clipped to it.
   */
  async detect(input: FloatArray, options: NmsOptions = {}): Promise<Detection[]> {
    validateImageTensor(input, this.inputChannels);
    const { layout } = await this.detectionFormat();
    const [output] = await (await this.context(this.profileValue.output)).forward([input]);
    const [, , height, width] = input.shape as [number, number, number, number];
    // Clipped to the input, as detectors' post-processing clips them: what is listed can be explained.
    return clipDetections(detect(output as FloatArray, layout, options), width, height);
  }

  /**
   * The target of a detection: one `detect` returned, or a box and label of your own, in the pixels of an input of
   * `size` (the explained input's; other scales scale it). Refuses a box outside the input and a label the model lacks.
   */
  async detectionTarget(
    detection: { box: Box; label: number },
    size: InputSize,
    options: Pick<DetectionSpec, 'nms' | 'iouThreshold'> = {},
  ): Promise<DetectionTarget> {
    const { layout, classes } = await this.detectionFormat();
    checkBox(detection.box, detection.label, size.width, size.height, classes);
    return detectionTarget({ box: detection.box, label: detection.label, size, layout, ...options });
  }

  /**
   * The target of a box given in an image's pixels (the `image` the input was made from, by `preprocess`'s square
   * resize; the input's own size by default), as `--target box:x1,y1,x2,y2[:label]` gives it: without a label, the
   * label of the detection that overlaps the box most (score above 0.05). Also returns the box in the input's pixels.
   */
  async boxTarget(
    given: { box: Box; label?: number },
    input: FloatArray,
    image?: InputSize,
  ): Promise<{ target: DetectionTarget; box: Box; label: number }> {
    const { classes } = await this.detectionFormat();
    const [, , height, width] = input.shape as [number, number, number, number];
    checkBox(given.box, given.label ?? 0, image?.width ?? width, image?.height ?? height, classes);
    const sx = image ? image.width / width : 1;
    const sy = image ? image.height / height : 1;
    const box: Box = [given.box[0] / sx, given.box[1] / sy, given.box[2] / sx, given.box[3] / sy];
    let label = given.label;
    if (label === undefined) {
      let best = 0;
      for (const d of await this.detect(input, { scoreThreshold: 0.05 })) {
        const iou = boxIou(d.box, box);
        if (iou > best) {
          best = iou;
          label = d.label;
        }
      }
      if (label === undefined)
        throw new CamerasError(`no detection overlaps the box ${given.box.join(',')}; give its label: box:${given.box.join(',')}:<label>`);
    }
    return { target: await this.detectionTarget({ box, label }, { width, height }), box, label };
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
    checkSizes(this.profileValue, size === undefined ? input.shape.slice(2) : [size]);
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
    for (const head of this.heads.values())
      await head.then(
        (h) => h.release(),
        () => undefined,
      );
    this.heads.clear();
  }
}
