import { CamerasError } from '../errors.js';
import { logitsOf } from './autodiff.js';
import { OnnxGraph } from './graph.js';
import { DataType, type NodeProto } from './proto.js';
import { inferRanks } from './ranks.js';

/**
 * The part of a model from tensor `target` to `output` (default: its logits), as a model whose input is `target`:
 * what perturbation methods (Ablation-CAM) run with edited activations. Refused when the head also needs other
 * activations of the model (a skip connection around the target).
 */
export function buildHeadModel(
  bytes: Uint8Array,
  target: string,
  output?: string,
): { bytes: Uint8Array; output: string; shapeInputs: string[] } {
  const graph = OnnxGraph.fromBytes(bytes);
  const logits = logitsOf(graph, output);
  const needed = new Set([logits]);
  const keep: NodeProto[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i] as NodeProto;
    if (!(node.output ?? []).some((name) => needed.has(name))) continue;
    keep.unshift(node);
    for (const input of node.input ?? []) if (input && input !== target && !graph.initializers.has(input)) needed.add(input);
  }
  const made = new Set(keep.flatMap((n) => n.output ?? []));
  // A model input the head reads only through Shape (torchvision's segmenters upsample to the input's size): the head
  // takes it as an input too, fed with a tensor of that shape.
  const shapeInputs = graph.inputNames.filter(
    (name) => needed.has(name) && keep.every((n) => !(n.input ?? []).includes(name) || n.opType === 'Shape'),
  );
  for (const name of needed) {
    if (name !== logits && !made.has(name) && !shapeInputs.includes(name)) {
      throw new CamerasError(
        `the layers after '${target}' also read '${name}', so the head cannot run from the layer alone; choose a block's output`,
      );
    }
  }
  if (!made.has(logits) || !keep.some((n) => (n.input ?? []).includes(target))) {
    throw new CamerasError(`'${target}' does not feed the output '${logits}'`);
  }
  const head = OnnxGraph.empty('head', graph.opset);
  // The layer's rank as the graph declares it, else as the graph's ops imply (a transformer's tokens are rank 3).
  const shape = (graph.declaredShape(target) ?? []).length || inferRanks(graph).get(target) || 4;
  head.addInput(
    target,
    DataType.FLOAT,
    Array.from({ length: shape }, (_, i) => `d${i}`),
  );
  for (const name of shapeInputs)
    head.addInput(
      name,
      DataType.FLOAT,
      // Its batch follows the edited activations' (a model exported with batch 1 included).
      (graph.declaredShape(name) ?? [0, 0, 0, 0]).map((d, i) => (d > 0 && i > 0 ? d : `${name}_${i}`)),
    );
  const used = new Set(keep.flatMap((n) => n.input ?? []));
  for (const [name, init] of graph.initializers) if (used.has(name)) head.graph.initializer?.push(init);
  head.replaceNodes(keep);
  // Batches of edited activations go through: the output's batch is not the model's declared 1.
  head.addOutput(logits);
  return { bytes: head.toBytes(), output: logits, shapeInputs };
}
