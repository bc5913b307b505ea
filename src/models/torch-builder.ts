import { CamerasError } from '../errors.js';
import { type AttributeInput, OnnxGraph } from '../onnx/graph.js';
import { DataType } from '../onnx/proto.js';
import type { StateDict, Weight } from './safetensors.js';

/** The exported scope of a module path, as torch.onnx.export writes it: `layer4.1.conv1` -> `/layer4/layer4.1/conv1`. */
export function scopeOf(path: string): string {
  const parts = path.split('.');
  const segments: string[] = [];
  parts.forEach((part, i) => {
    segments.push(/^\d+$/.test(part) && i > 0 ? `${parts[i - 1]}.${part}` : part);
  });
  return `/${segments.join('/')}`;
}

/**
 * Builds an ONNX graph from a torch state dict, one torch module at a time, naming every node by its
 * module's scope so layers resolve by module path (`layer4`, `features.29`) as on a torch export.
 */
export class TorchGraphBuilder {
  readonly graph: OnnxGraph;
  readonly weights: StateDict;

  constructor(weights: StateDict, name: string) {
    this.weights = weights;
    this.graph = OnnxGraph.empty(name);
    this.graph.addInput('input', DataType.FLOAT, ['batch', 3, 'height', 'width']);
  }

  has(name: string): boolean {
    return this.weights.has(name);
  }

  need(name: string): Weight {
    const w = this.weights.get(name);
    if (!w) throw new CamerasError(`the state dict has no ${name}; do the weights match the architecture?`);
    return w;
  }

  constant(name: string): string {
    const w = this.need(name);
    return this.graph.addConstant(name, w.data, w.shape);
  }

  node(module: string, op: string, inputs: string[], attrs: Record<string, AttributeInput> = {}): string {
    return this.graph.addNode(op, inputs, attrs, { name: `${scopeOf(module)}/${op}` })[0] as string;
  }

  conv(x: string, module: string, options: { stride?: number; padding?: number; groups?: number } = {}): string {
    const w = this.need(`${module}.weight`);
    const [kh, kw] = w.shape.slice(2) as [number, number];
    const s = options.stride ?? 1;
    const p = options.padding ?? 0;
    const inputs = [x, this.constant(`${module}.weight`)];
    if (this.has(`${module}.bias`)) inputs.push(this.constant(`${module}.bias`));
    return this.node(module, 'Conv', inputs, {
      kernel_shape: [kh, kw],
      strides: [s, s],
      pads: [p, p, p, p],
      dilations: [1, 1],
      group: options.groups ?? 1,
    });
  }

  batchNorm(x: string, module: string, epsilon = 1e-5): string {
    const params = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => this.constant(`${module}.${p}`));
    return this.node(module, 'BatchNormalization', [x, ...params], { epsilon: { float: epsilon } });
  }

  relu(x: string, module: string): string {
    return this.node(module, 'Relu', [x]);
  }

  maxPool(x: string, module: string, kernel: number, stride: number, padding = 0, ceil = false): string {
    return this.node(module, 'MaxPool', [x], {
      kernel_shape: [kernel, kernel],
      strides: [stride, stride],
      pads: [padding, padding, padding, padding],
      ceil_mode: ceil ? 1 : 0,
    });
  }

  linear(x: string, module: string): string {
    const inputs = [x, this.constant(`${module}.weight`)];
    if (this.has(`${module}.bias`)) inputs.push(this.constant(`${module}.bias`));
    return this.node(module, 'Gemm', inputs, { transB: 1 });
  }

  flatten(x: string, module = ''): string {
    return this.graph.addNode('Flatten', [x], { axis: 1 }, { name: module ? `${scopeOf(module)}/Flatten` : '/Flatten' })[0] as string;
  }

  /**
   * torch's AdaptiveAvgPool2d(out): row window i averages rows floor(i H / out) .. ceil((i + 1) H / out),
   * written as Y = P_h X P_w^T with the averaging matrices built from the input's size at run time,
   * so it is exact at every input size (a fixed AveragePool is only right where `out` divides H).
   */
  adaptiveAvgPool(x: string, module: string, out: number): string {
    const g = this.graph;
    const int64 = (values: number[]) => g.addConstant('c', values, [values.length], 'int64');
    const scalar = (value: number) => g.addConstant('c', [value], [], 'int64');
    const [shape] = g.addNode('Shape', [x], {}, { name: `${scopeOf(module)}/Shape` });
    const averaging = (axis: number): string => {
      const [size] = g.addNode('Gather', [shape as string, scalar(axis)], { axis: 0 });
      const [rows] = g.addNode('Range', [scalar(0), scalar(out), scalar(1)]); // i
      const [start] = g.addNode('Div', [g.addNode('Mul', [rows as string, size as string])[0] as string, scalar(out)]);
      const next = g.addNode('Mul', [g.addNode('Add', [rows as string, scalar(1)])[0] as string, size as string])[0] as string;
      const [end] = g.addNode('Div', [g.addNode('Add', [next, scalar(out - 1)])[0] as string, scalar(out)]);
      const [columns] = g.addNode('Range', [scalar(0), size as string, scalar(1)]); // h
      const col = g.addNode('Unsqueeze', [columns as string, int64([0])])[0] as string; // [1, H]
      const lo = g.addNode('Unsqueeze', [start as string, int64([1])])[0] as string; // [out, 1]
      const hi = g.addNode('Unsqueeze', [end as string, int64([1])])[0] as string;
      const inside = g.addNode('And', [
        g.addNode('GreaterOrEqual', [col, lo])[0] as string,
        g.addNode('Less', [col, hi])[0] as string,
      ])[0] as string;
      const count = g.addNode('Cast', [g.addNode('Sub', [hi, lo])[0] as string], { to: DataType.FLOAT })[0] as string;
      return g.addNode('Div', [g.addNode('Cast', [inside], { to: DataType.FLOAT })[0] as string, count])[0] as string; // [out, H]
    };
    const rowsMatrix = averaging(2);
    const colsMatrix = g.addNode('Transpose', [averaging(3)], { perm: [1, 0] })[0] as string; // [W, out]
    const [left] = g.addNode('MatMul', [rowsMatrix, x], {}, { name: `${scopeOf(module)}/MatMul` }); // [N, C, out, W]
    return g.addNode('MatMul', [left as string, colsMatrix], {}, { name: `${scopeOf(module)}/MatMul` })[0] as string; // [N, C, out, out]
  }

  /** Names the output `logits` ([batch, classes]) and serialises the model. */
  finish(logits: string, classes: number): Uint8Array {
    this.graph.addNode('Identity', [logits], {}, { outputs: ['logits'], name: '/output/Identity' });
    this.graph.addOutput('logits', DataType.FLOAT, ['batch', classes]);
    return this.graph.toBytes();
  }
}
