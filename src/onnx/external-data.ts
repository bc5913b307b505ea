import { CamerasError } from '../errors.js';
import {
  decodeModel,
  encodeModel,
  externalEntry as entry,
  type GraphProto,
  isExternal,
  type ModelProto,
  onnx,
  type TensorProto,
} from './proto.js';

/** A model's external data files by their `location` (relative to the model file), as bytes or read on demand. */
export type ExternalData = Readonly<Record<string, Uint8Array>> | ((location: string) => Uint8Array | Promise<Uint8Array>);

/** Every tensor of a graph, its subgraphs' and its nodes' attribute tensors included (where external data can be). */
function* tensorsOf(graph: GraphProto | null | undefined): Generator<TensorProto> {
  if (!graph) return;
  yield* graph.initializer ?? [];
  for (const node of graph.node ?? [])
    for (const attribute of node.attribute ?? []) {
      if (attribute.t) yield attribute.t;
      yield* attribute.tensors ?? [];
      yield* tensorsOf(attribute.g);
      for (const sub of attribute.graphs ?? []) yield* tensorsOf(sub);
    }
}

/** The data files a decoded model's tensors are kept in, by location, in order of first use (none for most models). */
export function externalDataFiles(model: ModelProto): string[] {
  const files = new Set<string>();
  for (const tensor of tensorsOf(model.graph)) if (isExternal(tensor)) files.add(entry(tensor, 'location') ?? '');
  return [...files];
}

/**
 * The model with every tensor kept in an external data file (as exporters write models over 2 GB, and newer ones any
 * model: `model.onnx` + `model.onnx.data`) read into it, so the rest of the pipeline sees one self-contained model.
 * Bytes without external data come back as they are. A location outside the model's folder, a missing file or a
 * range past a file's end fails in one line. Limit: the result is one protobuf, so at most 2 GB.
 */
export async function inlineExternalData(bytes: Uint8Array, data: ExternalData, source = 'model'): Promise<Uint8Array> {
  const model = decodeModel(bytes, source, { externalData: true });
  const files = externalDataFiles(model);
  if (files.length === 0) return bytes;
  const read = new Map<string, Uint8Array>();
  for (const location of files) {
    if (location === '' || /^([/\\]|[A-Za-z]:)/.test(location) || location.split(/[\\/]/).includes('..'))
      throw new CamerasError(
        `${source} names external data at '${location}', outside its folder; export it again with the data beside the model`,
      );
    const found = typeof data === 'function' ? await data(location) : data[location];
    if (!found)
      throw new CamerasError(
        `${source} keeps its weights in '${location}', which was not given; pass it beside the model (externalData: { '${location}': bytes })`,
      );
    read.set(location, found);
  }
  let total = 0;
  for (const tensor of tensorsOf(model.graph)) {
    if (!isExternal(tensor)) continue;
    const file = read.get(entry(tensor, 'location') ?? '') as Uint8Array;
    const offset = Number(entry(tensor, 'offset') ?? 0);
    const length = entry(tensor, 'length') === undefined ? file.length - offset : Number(entry(tensor, 'length'));
    if (!(offset >= 0 && length >= 0 && offset + length <= file.length))
      throw new CamerasError(
        `${source}: tensor '${tensor.name}' lies at bytes ${offset}..${offset + length} of '${entry(tensor, 'location')}', which has ${file.length}; the data file does not belong to this model, export it again`,
      );
    tensor.rawData = file.subarray(offset, offset + length);
    tensor.externalData = [];
    tensor.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
    total += length;
  }
  if (total + bytes.length > 2 ** 31 - 1)
    throw new CamerasError(
      `${source} with its external data is over 2 GB, more than one ONNX protobuf holds; it cannot be explained here yet`,
    );
  return encodeModel(model);
}
