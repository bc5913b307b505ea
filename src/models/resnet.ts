import { CamerasError } from '../errors.js';
import { OnnxGraph } from '../onnx/graph.js';
import { DataType, onnx } from '../onnx/proto.js';
import type { StateDict, Weight } from './safetensors.js';

/** torchvision's ResNet family: block type and blocks per stage. */
export const RESNETS = {
  resnet18: { bottleneck: false, layers: [2, 2, 2, 2] },
  resnet34: { bottleneck: false, layers: [3, 4, 6, 3] },
  resnet50: { bottleneck: true, layers: [3, 4, 6, 3] },
  resnet101: { bottleneck: true, layers: [3, 4, 23, 3] },
  resnet152: { bottleneck: true, layers: [3, 8, 36, 3] },
} as const;

export type ResnetName = keyof typeof RESNETS;

/**
 * Builds torchvision's ResNet (v1.5: the stride on the 3x3 conv of a bottleneck) as ONNX from a
 * state dict, inferring depth, widths and classes from the tensor names and shapes. Node names carry
 * the torch module scope (`/layer4/layer4.1/conv1/Conv`) so `--layer layer4` works as on a
 * torch.onnx.export; BatchNormalization stays an op (ONNX Runtime folds it into the convolutions).
 */
export function buildResnet(weights: StateDict): Uint8Array {
  const need = (name: string): Weight => {
    const w = weights.get(name);
    if (!w) throw new CamerasError(`the state dict has no ${name}; is it a torchvision ResNet?`);
    return w;
  };
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 16 }],
    producerName: 'cameras-saliency',
    graph: { name: 'resnet', node: [], initializer: [], input: [], output: [] },
  });
  const g = new OnnxGraph(model);
  g.addInput('input', DataType.FLOAT, ['batch', 3, 'height', 'width']);
  const constant = (name: string) => g.addConstant(name, need(name).data, need(name).shape);
  const conv = (x: string, scope: string, module: string, stride: number, padding: number) => {
    const w = need(`${module}.weight`);
    const bias = weights.has(`${module}.bias`) ? [constant(`${module}.bias`)] : [];
    const k = w.shape[2] as number;
    return g.addNode(
      'Conv',
      [x, constant(`${module}.weight`), ...bias],
      {
        kernel_shape: [k, k],
        strides: [stride, stride],
        pads: [padding, padding, padding, padding],
        dilations: [1, 1],
        group: 1,
      },
      { name: `${scope}/Conv` },
    )[0] as string;
  };
  const bn = (x: string, scope: string, module: string) =>
    g.addNode(
      'BatchNormalization',
      [x, ...['weight', 'bias', 'running_mean', 'running_var'].map((p) => constant(`${module}.${p}`))],
      { epsilon: { float: 1e-5 } },
      { name: `${scope}/BatchNormalization` },
    )[0] as string;
  const relu = (x: string, scope: string) => g.addNode('Relu', [x], {}, { name: `${scope}/Relu` })[0] as string;

  let x = relu(bn(conv('input', '/conv1', 'conv1', 2, 3), '/bn1', 'bn1'), '/relu');
  x = g.addNode('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { name: '/maxpool/MaxPool' })[0] as string;
  const bottleneck = weights.has('layer1.0.conv3.weight');
  for (let stage = 1; stage <= 4; stage++) {
    for (let b = 0; weights.has(`layer${stage}.${b}.conv1.weight`); b++) {
      const module = `layer${stage}.${b}`;
      const scope = `/layer${stage}/${module}`;
      const stride = stage > 1 && b === 0 ? 2 : 1;
      const identity = x;
      let y: string;
      if (bottleneck) {
        y = relu(bn(conv(x, `${scope}/conv1`, `${module}.conv1`, 1, 0), `${scope}/bn1`, `${module}.bn1`), `${scope}/relu`);
        y = relu(bn(conv(y, `${scope}/conv2`, `${module}.conv2`, stride, 1), `${scope}/bn2`, `${module}.bn2`), `${scope}/relu_1`);
        y = bn(conv(y, `${scope}/conv3`, `${module}.conv3`, 1, 0), `${scope}/bn3`, `${module}.bn3`);
      } else {
        y = relu(bn(conv(x, `${scope}/conv1`, `${module}.conv1`, stride, 1), `${scope}/bn1`, `${module}.bn1`), `${scope}/relu`);
        y = bn(conv(y, `${scope}/conv2`, `${module}.conv2`, 1, 1), `${scope}/bn2`, `${module}.bn2`);
      }
      const shortcut = weights.has(`${module}.downsample.0.weight`)
        ? bn(
            conv(identity, `${scope}/downsample/downsample.0`, `${module}.downsample.0`, stride, 0),
            `${scope}/downsample/downsample.1`,
            `${module}.downsample.1`,
          )
        : identity;
      const [sum] = g.addNode('Add', [y, shortcut], {}, { name: `${scope}/Add` });
      x = relu(sum as string, `${scope}/relu_${bottleneck ? 2 : 1}`);
    }
  }
  const [pooled] = g.addNode('GlobalAveragePool', [x], {}, { name: '/avgpool/GlobalAveragePool' });
  const [flat] = g.addNode('Flatten', [pooled as string], { axis: 1 }, { name: '/Flatten' });
  g.addNode('Gemm', [flat as string, constant('fc.weight'), constant('fc.bias')], { transB: 1 }, { name: '/fc/Gemm', outputs: ['logits'] });
  g.addOutput('logits', DataType.FLOAT, ['batch', need('fc.weight').shape[0] as number]);
  return g.toBytes();
}

/**
 * A torchvision ResNet state dict with seeded random weights, initialised as torchvision does
 * (Kaiming-normal convolutions, unit batch norms, uniform linear layer): for benchmarks and tests,
 * where no pretrained weights are at hand.
 */
export function randomResnetWeights(name: ResnetName, seed = 0, classes = 1000): StateDict {
  const { bottleneck, layers } = RESNETS[name];
  let state = seed >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 2 ** 32;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const weights: StateDict = new Map();
  const convWeight = (module: string, out: number, inp: number, k: number) => {
    const std = Math.sqrt(2 / (out * k * k));
    weights.set(`${module}.weight`, {
      shape: [out, inp, k, k],
      data: Float32Array.from({ length: out * inp * k * k }, () => normal() * std),
    });
  };
  const bnWeights = (module: string, c: number) => {
    weights.set(`${module}.weight`, { shape: [c], data: new Float32Array(c).fill(1) });
    weights.set(`${module}.bias`, { shape: [c], data: new Float32Array(c) });
    weights.set(`${module}.running_mean`, { shape: [c], data: new Float32Array(c) });
    weights.set(`${module}.running_var`, { shape: [c], data: new Float32Array(c).fill(1) });
  };
  convWeight('conv1', 64, 3, 7);
  bnWeights('bn1', 64);
  const expansion = bottleneck ? 4 : 1;
  let inplanes = 64;
  layers.forEach((blocks, i) => {
    const planes = 64 * 2 ** i;
    for (let b = 0; b < blocks; b++) {
      const module = `layer${i + 1}.${b}`;
      const stride = i > 0 && b === 0 ? 2 : 1;
      if (bottleneck) {
        convWeight(`${module}.conv1`, planes, inplanes, 1);
        bnWeights(`${module}.bn1`, planes);
        convWeight(`${module}.conv2`, planes, planes, 3);
        bnWeights(`${module}.bn2`, planes);
        convWeight(`${module}.conv3`, planes * 4, planes, 1);
        bnWeights(`${module}.bn3`, planes * 4);
      } else {
        convWeight(`${module}.conv1`, planes, inplanes, 3);
        bnWeights(`${module}.bn1`, planes);
        convWeight(`${module}.conv2`, planes, planes, 3);
        bnWeights(`${module}.bn2`, planes);
      }
      if (stride !== 1 || inplanes !== planes * expansion) {
        convWeight(`${module}.downsample.0`, planes * expansion, inplanes, 1);
        bnWeights(`${module}.downsample.1`, planes * expansion);
      }
      inplanes = planes * expansion;
    }
  });
  const bound = 1 / Math.sqrt(inplanes);
  weights.set('fc.weight', {
    shape: [classes, inplanes],
    data: Float32Array.from({ length: classes * inplanes }, () => (uniform() * 2 - 1) * bound),
  });
  weights.set('fc.bias', { shape: [classes], data: Float32Array.from({ length: classes }, () => (uniform() * 2 - 1) * bound) });
  return weights;
}
