import type { OnnxGraph } from '../onnx/graph.js';
import { DataType, onnx } from '../onnx/proto.js';
import { type OrtRuntime, QUIET } from './runtime.js';

/**
 * Shapes of `tensors` for one input of side `size` (zeros), found by running the model with them as
 * extra outputs: exact where static shape inference would have to guess.
 */
export async function probeShapes(runtime: OrtRuntime, graph: OnnxGraph, tensors: string[], size: number): Promise<Map<string, number[]>> {
  const model = onnx.ModelProto.decode(graph.toBytes());
  const outputs = model.graph?.output ?? [];
  const existing = new Set(outputs.map((o) => o.name));
  const inputs = new Set(graph.inputNames);
  for (const name of tensors) {
    if (!existing.has(name) && !inputs.has(name)) {
      outputs.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: DataType.FLOAT } } }));
    }
  }
  const session = await runtime.InferenceSession.create(onnx.ModelProto.encode(model).finish(), QUIET);
  try {
    const input = graph.inputNames[0] as string;
    const declared = graph.declaredShape(input) ?? [1, 3, size, size];
    const shape = declared.map((d, i) => (d > 0 ? d : i === 0 ? 1 : i === 1 ? 3 : size));
    const count = shape.reduce((a, b) => a * b, 1);
    const result = await session.run({ [input]: new runtime.Tensor('float32', new Float32Array(count), shape) });
    const shapes = new Map<string, number[]>();
    for (const name of tensors) {
      if (inputs.has(name)) shapes.set(name, shape);
      else if (result[name]) shapes.set(name, [...(result[name]?.dims ?? [])]);
    }
    return shapes;
  } finally {
    await session.release();
  }
}
