import onnxProto from 'onnx-proto';
import { CamerasError } from '../errors.js';

/** The generated ONNX protobuf classes (onnx.proto, via protobufjs). */
export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.IModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

export const DataType = onnx.TensorProto.DataType;
export const AttributeType = onnx.AttributeProto.AttributeType;

/** protobufjs gives int64 fields as Long objects (when `long` is installed) or numbers. */
export type IntLike = number | { toNumber(): number };

export function toNumber(value: IntLike | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/**
 * Parses ONNX bytes; a file that is not a valid ONNX model fails with one line naming the fix, and so does one that
 * keeps its weights in external data files not read into it (`inlineExternalData`), unless `externalData` allows it.
 */
export function decodeModel(bytes: Uint8Array, source = 'model', options: { externalData?: boolean } = {}): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new CamerasError(
      `${source} is not a valid ONNX model (${(error as Error).message}); export it again with torch.onnx.export or tf2onnx`,
    );
  }
  if (!model.graph?.node || model.graph.node.length === 0) {
    throw new CamerasError(`${source} is not a valid ONNX model (it has no graph nodes); export it again`);
  }
  if (!options.externalData)
    for (const init of model.graph.initializer ?? []) {
      if (isExternal(init)) {
        const location = externalEntry(init, 'location') ?? 'a data file';
        throw new CamerasError(
          `${source} keeps its weights in external data ('${location}'); open it by its path with that file beside it, or give its bytes as externalData: { '${location}': bytes }`,
        );
      }
    }
  return model;
}

/** Whether a tensor keeps its values in an external data file. */
export function isExternal(tensor: TensorProto): boolean {
  return tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (tensor.externalData?.length ?? 0) > 0;
}

/** One of a tensor's external data entries (`location`, `offset`, `length`). */
export function externalEntry(tensor: TensorProto, key: string): string | undefined {
  return tensor.externalData?.find((e) => e.key === key)?.value ?? undefined;
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}
