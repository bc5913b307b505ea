import type { InferenceSession } from 'onnxruntime-common';
import { FusionEngine } from './engine/fusion.js';
import { GradientSession } from './engine/gradient-session.js';
import { resizeBicubic } from './engine/resize.js';
import type { OrtRuntime } from './engine/runtime.js';
import { CamerasError } from './errors.js';
import type { FloatArray } from './io/npy.js';
import { explainAblationCam } from './methods/ablation-cam.js';
import { CAM_METHODS, type CamMethod, explainCam } from './methods/cam.js';
import {
  BATCH_PIXELS,
  type CamerasOptions,
  type CamerasResult,
  DEFAULT_RESOLUTIONS,
  explainCamerasBatch,
  type Fuse,
  normaliseFused,
  validateImageTensor,
} from './methods/cameras.js';
import { explainInputGradient, INPUT_GRADIENT_METHODS, type InputGradientMethod } from './methods/input-gradient.js';
import { explainScoreCam } from './methods/score-cam.js';
import { OnnxGraph } from './onnx/graph.js';
import { buildHeadModel } from './onnx/head.js';
import { defaultLayer, type Layer, resolveLayer } from './onnx/layers.js';

/** Every method `explain` takes. */
export const METHODS = ['cameras', ...CAM_METHODS, 'scorecam', 'ablationcam', ...INPUT_GRADIENT_METHODS] as const;

export interface ExplainerConfig {
  /** The ONNX model's bytes. */
  model: Uint8Array;
  /** Target layer: torch module path (`layer4`), node name or tensor name; default: the last layer before global pooling. */
  layer?: string;
  /** Intra-op threads for ONNX Runtime; default: all cores. */
  threads?: number;
  /** Name used in messages, e.g. the model's path. */
  source?: string;
}

/**
 * Explains one classifier at one target layer. Building it compiles the gradient graph and an ONNX
 * Runtime session once; every `explain` call after that reuses them for any class and scale.
 */
export class Explainer {
  readonly layer: Layer;
  /** Channels the model's input expects, when the model declares them. */
  readonly inputChannels: number | undefined;
  private readonly session: GradientSession;
  private readonly fusion: FusionEngine;
  /** Built on first use: the session that differentiates with respect to the input pixels. */
  private inputSession: Promise<GradientSession> | undefined;

  private constructor(
    layer: Layer,
    session: GradientSession,
    fusion: FusionEngine,
    inputChannels: number | undefined,
    private readonly makeInputSession: () => Promise<GradientSession>,
    private readonly runtime: OrtRuntime,
    private readonly modelBytes: Uint8Array,
  ) {
    this.layer = layer;
    this.session = session;
    this.fusion = fusion;
    this.inputChannels = inputChannels;
  }

  private headSession: Promise<{ session: InferenceSession; input: string; logits: string }> | undefined;

  /** Built on first use: the network from the target layer to the logits (Ablation-CAM runs it). */
  private head(): Promise<{ session: InferenceSession; input: string; logits: string }> {
    this.headSession ??= (async () => {
      const head = buildHeadModel(this.modelBytes, this.layer.tensor);
      const session = await this.runtime.InferenceSession.create(head.bytes, { graphOptimizationLevel: 'all' });
      return { session, input: this.layer.tensor, logits: head.logits };
    })();
    return this.headSession;
  }

  private inputGradients(): Promise<GradientSession> {
    this.inputSession ??= this.makeInputSession();
    return this.inputSession;
  }

  static async create(runtime: OrtRuntime, config: ExplainerConfig): Promise<Explainer> {
    const graph = OnnxGraph.fromBytes(config.model, config.source);
    const layer = config.layer ? resolveLayer(graph, config.layer) : defaultLayer(graph);
    const input = graph.inputNames[0];
    const channels = input ? graph.declaredShape(input)?.[1] : undefined;
    const session = await GradientSession.create(runtime, graph, [layer.tensor], { threads: config.threads });
    const fusion = new FusionEngine(runtime, config.threads);
    const makeInputSession = () => GradientSession.create(runtime, graph, [graph.inputNames[0] as string], { threads: config.threads });
    return new Explainer(
      layer,
      session,
      fusion,
      channels !== undefined && channels > 0 ? channels : undefined,
      makeInputSession,
      runtime,
      config.model,
    );
  }

  /** Number of classes, when the model declares it. */
  get classCount(): number | undefined {
    return this.session.classCount;
  }

  /** CAMERAS saliency for a normalised NCHW float32 tensor `[1, C, H, W]`. */
  async explain(input: FloatArray, options: CamerasOptions = {}): Promise<CamerasResult> {
    return (await this.explainBatch([input], options))[0] as CamerasResult;
  }

  /**
   * CAMERAS for many images; the same maps as explaining each alone. With `batch`, each scale stacks
   * images into one ONNX Runtime call where the model and memory allow: on a 2-core CPU that measured
   * no faster (intra-op threads already keep both cores busy), so it is off by default.
   */
  async explainBatch(inputs: FloatArray[], options: CamerasOptions & { batch?: boolean } = {}): Promise<CamerasResult[]> {
    for (const input of inputs) validateImageTensor(input, this.inputChannels);
    const method = options.method ?? 'cameras';
    if (method !== 'cameras') {
      const results: CamerasResult[] = [];
      for (const input of inputs) {
        if ((CAM_METHODS as readonly string[]).includes(method)) {
          results.push(
            await explainCam(this.session, input, method as CamMethod, options.classIndex ?? null, {
              postprocess: options.postprocess,
              eigenSign: options.eigenSign,
              resolutions: options.multiScale ? (options.resolutions ?? DEFAULT_RESOLUTIONS) : undefined,
            }),
          );
        } else if (method === 'ablationcam') {
          results.push(await explainAblationCam(this.runtime, this.session, await this.head(), input, options.classIndex ?? null));
        } else if (method === 'scorecam') {
          results.push(await explainScoreCam(this.session, input, options.classIndex ?? null));
        } else if ((INPUT_GRADIENT_METHODS as readonly string[]).includes(method)) {
          results.push(await explainInputGradient(await this.inputGradients(), input, method as InputGradientMethod, options));
        } else {
          throw new CamerasError(`unknown method '${method}'; choose one of: ${METHODS.join(', ')}`);
        }
      }
      return results;
    }
    return explainCamerasBatch(this.session, inputs, options, this.fuse, options.batch ? BATCH_PIXELS : 0);
  }

  private readonly fuse: Fuse = async (scales, size) => normaliseFused(await this.fusion.fuseSums(scales, size), scales.length, size);

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
    const [, channels, height, width] = input.shape as [number, number, number, number];
    const scaled =
      size === undefined || (height === size && width === size)
        ? input
        : { data: resizeBicubic(input.data, input.shape, size, size), shape: [1, channels, size, size] };
    return (await this.session.run(scaled, null)).logits.data;
  }

  /** Frees the ONNX Runtime session. */
  async dispose(): Promise<void> {
    await this.session.dispose();
    await this.fusion.dispose();
    if (this.inputSession) await (await this.inputSession).dispose();
    if (this.headSession) await (await this.headSession).session.release();
  }
}
