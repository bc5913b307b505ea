/**
 * cameras-saliency/core: the isomorphic core. It imports nothing Node-only and takes the ONNX Runtime flavour
 * as a value, so the same code runs on onnxruntime-node and, in a browser or a worker, on onnxruntime-web:
 *
 *     import * as ort from 'onnxruntime-web';
 *     import { Explainer } from 'cameras-saliency/core';
 *     const explainer = await Explainer.create(ort, { model: modelBytes }); // its profile inferred from the graph
 *     const result = await explainer.explain(explainer.preprocess(rgbImage), { method: 'cameras' });
 */

export { type AttackGoal, type PgdOptions, type PgdResult, pgd, saliencyPenalty } from './attacks/pgd.js';
export { type SaliencyAttackOptions, type SaliencyAttackResult, saliencyGuidedAttack } from './attacks/saliency-attack.js';
export { parseCoco } from './datasets/coco.js';
export { type ClassMask, classesIn, classMask } from './datasets/mask.js';
export { type AnnotatedObject, type Annotation, formatVoc, parseVoc } from './datasets/voc.js';
export {
  type Box,
  boxIou,
  checkBox,
  DETECTION_LAYOUTS,
  type Detection,
  type DetectionLayout,
  type DetectionSpec,
  type DetectionTarget,
  detect,
  detectionClasses,
  detectionLayout,
  detectionTarget,
  isDetectionTarget,
  matchingPrediction,
  type NmsOptions,
  nonMaxSuppression,
  type Prediction,
  parseBoxTarget,
  readPredictions,
  scaleBox,
} from './engine/detections.js';
export type { FusionScale } from './engine/fusion.js';
export {
  type GradientPass,
  GradientSession,
  type GradientSessionOptions,
  type OutputKind,
  RuntimeFailure,
} from './engine/gradient-session.js';
export { type LayerView, layerViewName, parseLayerView, viewAsNchw, viewBack } from './engine/layer-view.js';
export {
  type CamPostprocess,
  minMax,
  postprocessCam,
  type RawMap,
  reduceChannels,
  relu,
  type SaliencyMap,
  scaleLikeGradCam,
} from './engine/postprocess.js';
export { resizeBicubic, resizeBilinear, resizeInput, resizePlaneBilinear } from './engine/resize.js';
export type { OrtRuntime, SessionCache, SessionOptions } from './engine/runtime.js';
export { ClassConsistency, DEFAULT_RESOLUTIONS, type ScaleFacts } from './engine/scales.js';
export {
  type ClassifierTarget,
  checkClass,
  frozenRegion,
  type InputSize,
  isOutputTarget,
  isRegionTarget,
  type OutputTarget,
  parseTarget,
  predictedMask,
  probabilityOf,
  type RegionMask,
  type RegionTarget,
  regionMaskAt,
  resizeMaskNearest,
  softmax,
  type Target,
  targetName,
  targetScore,
  topK,
  topOne,
} from './engine/scores.js';
export { CamerasError, ExitCode } from './errors.js';
/** Former names, kept for code written against 0.1. */
export type { ExplainOptions as CamerasOptions } from './explainer.js';
export { Explainer, type ExplainerConfig, type ExplainOptions } from './explainer.js';
export { type FloatArray, formatNpy, parseNpy } from './io/npy.js';
export {
  blackPixel,
  PRESETS,
  type PreprocessPreset,
  preprocess,
  presetByName,
  type RgbImage,
  resizeLinearUint8,
} from './io/preprocess.js';
export {
  type CamFormula,
  type CamOptions,
  camMethod,
  channelSums,
  elementwise,
  type LayerTensors,
  weightedChannels,
} from './methods/base-cam.js';
export { type CamerasMethodOptions, fuseScales } from './methods/cameras.js';
export { affinity, type DriseOptions, driseMask, driseMaskFrom, type MaskSet } from './methods/drise.js';
export type { EigenCamOptions, EigenSign } from './methods/eigencam.js';
export type { IntegratedGradientsOptions } from './methods/integrated-gradients.js';
export type {
  CommonOptions,
  ExplainResult,
  ExplainResult as CamerasResult,
  MethodContext,
  MethodNeed,
  MethodOutput,
  NoiseOptions,
  PassRunner,
  SaliencyMethod,
  ScaleOptions,
} from './methods/method.js';
export { noiseTunnel } from './methods/noise-tunnel.js';
export { DEFAULT_METHOD, METHODS, type MethodOptions, methodByName, REGISTRY } from './methods/registry.js';
export { confidenceChange } from './metrics/confidence-change.js';
export { type Densities, densities, maskedInputs } from './metrics/density.js';
export {
  blurChannels,
  type CausalCurve,
  type CausalOptions,
  causalMetric,
  type Forward,
  riseAuc,
  riseKernel,
  saliencyOrder,
} from './metrics/insertion-deletion.js';
export type { EvalMetric, PairScores, ScoredPair, SummaryColumn } from './metrics/metric.js';
export { EVAL_METRICS, metricByName } from './metrics/names.js';
export { PointingGameScore, pointingHit, pointOf } from './metrics/pointing-game.js';
export { noisyLinearImpute, percentile, type RoadOptions, road } from './metrics/road.js';
export {
  type AttributionView,
  adebayoDiverging,
  adebayoGrayscale,
  defaultDepths,
  type RandomisationMode,
  type SanityOptions,
  type SanityReport,
  sanityCheck,
  similarity,
} from './metrics/sanity.js';
export { averageRanks, hog, pearson, spearman, ssim } from './metrics/similarity.js';
export {
  checkOutput,
  detectLayerView,
  type ModelOutput,
  type ModelProfile,
  mergeProfiles,
  type ProfileOverrides,
  resolveProfile,
  zooProfile,
} from './models/profile.js';
export { classByName, resolutionsFor, ZOO, type ZooEntry } from './models/zoo.js';
export { buildGradientGraph, type GradientGraph, type GradientGraphOptions } from './onnx/autodiff.js';
export { OnnxGraph } from './onnx/graph.js';
export { type Layer, listLayers } from './onnx/layers.js';
export { isOutline, outlineModel } from './onnx/outline.js';
export { type ParameterLayer, parameterLayers, randomiseLayers } from './onnx/randomise.js';
export { COLORMAPS_NAMES, type ColormapName, colormapTable, renderHeat } from './render/colormap.js';
