import { CamerasError } from '../errors.js';
import { attribute, floatAttr, intAttr, intsAttr, type OnnxGraph } from './graph.js';
import { type NodeProto, onnx } from './proto.js';

/** Oldest opset we can lift: older exports use shapes of ops we do not rewrite. */
const OLDEST_LIFTABLE = 9;

function dropAttributes(node: NodeProto, names: string[]): void {
  node.attribute = (node.attribute ?? []).filter((a) => !names.includes(a.name ?? ''));
}

/**
 * Raises the model's ai.onnx opset to `target`, rewriting the ops whose signature or meaning changed on
 * the way (axes and bounds that moved from attributes to inputs, Softmax's axis semantics at 13), so the
 * model computes exactly what it did. We need this because gradient graphs use newer ops (opset 16's
 * ScatterElements with reduction) and one model has one opset.
 */
export function raiseOpset(graph: OnnxGraph, target: number): void {
  const from = graph.opset;
  if (from >= target) return;
  if (from < OLDEST_LIFTABLE) {
    throw new CamerasError(`the model uses ONNX opset ${from}, older than ${OLDEST_LIFTABLE}; re-export it with opset 13 or newer`);
  }
  const original = [...graph.nodes];
  const rebuilt: NodeProto[] = [];
  // New nodes are appended by graph.addNode; collect them per original node to keep topological order.
  for (const node of original) {
    const before = graph.nodes.length;
    const replacement = upgradeNode(graph, node, from);
    const added = graph.nodes.splice(before);
    rebuilt.push(...added, ...replacement);
  }
  graph.replaceNodes(rebuilt);
  graph.opset = target;
}

function int64Input(graph: OnnxGraph, base: string, values: number[]): string {
  return graph.addConstant(base, values, [values.length], 'int64');
}

/** Returns the node(s) that replace `node`; helper nodes go through graph.addNode. */
function upgradeNode(graph: OnnxGraph, node: NodeProto, from: number): NodeProto[] {
  node.input ??= [];
  const inputs = node.input;
  const name = node.name || node.opType || 'node';
  switch (node.opType) {
    case 'Squeeze':
    case 'Unsqueeze':
    case 'ReduceSum':
      if (from < 13) {
        const axes = intsAttr(node, 'axes');
        dropAttributes(node, ['axes']);
        if (axes) inputs[1] = int64Input(graph, `${name}/axes`, axes);
      }
      return [node];
    case 'Split':
      if (from < 13) {
        const split = intsAttr(node, 'split');
        dropAttributes(node, ['split']);
        if (split) inputs[1] = int64Input(graph, `${name}/split`, split);
      }
      return [node];
    case 'Clip':
      if (from < 11) {
        const low = floatAttr(node, 'min', -3.4028234663852886e38);
        const high = floatAttr(node, 'max', 3.4028234663852886e38);
        dropAttributes(node, ['min', 'max']);
        inputs[1] = graph.addConstant(`${name}/min`, [low], [], 'float');
        inputs[2] = graph.addConstant(`${name}/max`, [high], [], 'float');
      }
      return [node];
    case 'Pad':
      if (from < 11) {
        const pads = intsAttr(node, 'pads') ?? [];
        const value = floatAttr(node, 'value', 0);
        dropAttributes(node, ['pads', 'value']);
        inputs[1] = int64Input(graph, `${name}/pads`, pads);
        inputs[2] = graph.addConstant(`${name}/value`, [value], [], 'float');
      }
      return [node];
    case 'Dropout':
      if (from < 12) dropAttributes(node, ['ratio', 'is_test']);
      return [node];
    case 'RoiAlign':
      if (!attribute(node, 'coordinate_transformation_mode')) {
        node.attribute?.push(
          onnx.AttributeProto.create({ name: 'coordinate_transformation_mode', type: 3, s: new TextEncoder().encode('output_half_pixel') }),
        );
      }
      return [node];
    case 'Softmax':
    case 'LogSoftmax':
    case 'Hardmax': {
      if (from >= 13) return [node];
      // Before 13 these flattened the input to 2-D at `axis`; keep that meaning explicitly.
      const axis = intAttr(node, 'axis', 1);
      dropAttributes(node, ['axis']);
      const x = inputs[0] as string;
      const [flat] = graph.addNode('Flatten', [x], { axis }, { name: `${name}/flatten` });
      const [shape] = graph.addNode('Shape', [x], {}, { name: `${name}/shape` });
      const y = node.output?.[0] as string;
      const inner = graph.freshName(`${name}/inner`);
      const op = onnx.NodeProto.create({
        ...node,
        input: [flat as string],
        output: [inner],
        attribute: [...(node.attribute ?? []), onnx.AttributeProto.create({ name: 'axis', type: 2, i: -1 })],
      });
      const reshape = onnx.NodeProto.create({
        opType: 'Reshape',
        name: graph.freshName(`${name}/reshape`),
        input: [inner, shape as string],
        output: [y],
      });
      return [op, reshape];
    }
    case 'Upsample':
    case 'Scatter':
      throw new CamerasError(`the model uses ${node.opType}, removed from newer ONNX opsets; re-export it with opset 13 or newer`);
    case 'Resize':
    case 'Slice':
      if ((node.opType === 'Resize' && from < 11) || (node.opType === 'Slice' && from < 10)) {
        throw new CamerasError(`the model uses ${node.opType} from opset ${from}; re-export it with opset 13 or newer`);
      }
      return [node];
    default:
      return [node];
  }
}
