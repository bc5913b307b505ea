import { CamerasError } from '../errors.js';
import { decodeModel, encodeModel, type TensorProto } from './proto.js';

/** Initializers up to this size keep their values (shape constants, small biases): structure may read them. */
const KEPT_BYTES = 1024;

const OUTLINE_KEY = 'cameras_saliency.outline';

function dataBytes(tensor: TensorProto): number {
  return (
    (tensor.rawData?.length ?? 0) +
    4 * ((tensor.floatData?.length ?? 0) + (tensor.int32Data?.length ?? 0)) +
    8 * ((tensor.int64Data?.length ?? 0) + (tensor.doubleData?.length ?? 0) + (tensor.uint64Data?.length ?? 0))
  );
}

/**
 * The model without the values of its large initializers (their names, types and shapes stay): enough to find
 * layers, shapes and class counts, a few kilobytes where the model is hundreds of megabytes. Marked, so it is
 * never taken for the model.
 */
export function outlineModel(bytes: Uint8Array): Uint8Array {
  const model = decodeModel(bytes);
  for (const tensor of model.graph?.initializer ?? []) {
    if (dataBytes(tensor) <= KEPT_BYTES) continue;
    tensor.rawData = new Uint8Array(0);
    tensor.floatData = [];
    tensor.int32Data = [];
    tensor.int64Data = [];
    tensor.doubleData = [];
    tensor.uint64Data = [];
  }
  model.metadataProps = [...(model.metadataProps ?? []).filter((p) => p.key !== OUTLINE_KEY), { key: OUTLINE_KEY, value: '1' }];
  return encodeModel(model);
}

/** True for what `outlineModel` made. */
export function isOutline(model: { metadataProps?: { key?: string | null }[] | null }): boolean {
  return (model.metadataProps ?? []).some((p) => p.key === OUTLINE_KEY);
}

/** Refuses an outline where the whole model is needed (a session to build, and nothing to read the weights with). */
export function requireWholeModel(model: { metadataProps?: { key?: string | null }[] | null }): void {
  if (isOutline(model))
    throw new CamerasError("the model is an outline without its weights (outlineModel); give 'loadModel' to read the whole model");
}
