import type { StateDict } from './safetensors.js';
import { TorchGraphBuilder } from './torch-builder.js';

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
 * torchvision's ResNet (v1.5: the stride on the 3x3 conv of a bottleneck) as ONNX from a state dict,
 * with depth, widths and classes read from the tensor names and shapes. BatchNormalization stays an op
 * (ONNX Runtime folds it into the convolutions).
 */
export function buildResnet(weights: StateDict): Uint8Array {
  const b = new TorchGraphBuilder(weights, 'resnet');
  let x = b.maxPool(b.relu(b.batchNorm(b.conv('input', 'conv1', { stride: 2, padding: 3 }), 'bn1'), 'relu'), 'maxpool', 3, 2, 1);
  const bottleneck = b.has('layer1.0.conv3.weight');
  for (let stage = 1; stage <= 4; stage++) {
    for (let i = 0; b.has(`layer${stage}.${i}.conv1.weight`); i++) {
      const m = `layer${stage}.${i}`;
      const stride = stage > 1 && i === 0 ? 2 : 1;
      let y: string;
      if (bottleneck) {
        y = b.relu(b.batchNorm(b.conv(x, `${m}.conv1`), `${m}.bn1`), `${m}.relu`);
        y = b.relu(b.batchNorm(b.conv(y, `${m}.conv2`, { stride, padding: 1 }), `${m}.bn2`), `${m}.relu_1`);
        y = b.batchNorm(b.conv(y, `${m}.conv3`), `${m}.bn3`);
      } else {
        y = b.relu(b.batchNorm(b.conv(x, `${m}.conv1`, { stride, padding: 1 }), `${m}.bn1`), `${m}.relu`);
        y = b.batchNorm(b.conv(y, `${m}.conv2`, { padding: 1 }), `${m}.bn2`);
      }
      const shortcut = b.has(`${m}.downsample.0.weight`) ? b.batchNorm(b.conv(x, `${m}.downsample.0`, { stride }), `${m}.downsample.1`) : x;
      x = b.relu(b.node(m, 'Add', [y, shortcut]), `${m}.relu_${bottleneck ? 2 : 1}`);
    }
  }
  const pooled = b.node('avgpool', 'GlobalAveragePool', [x]);
  return b.finish(b.linear(b.flatten(pooled), 'fc'), b.need('fc.weight').shape[0] as number);
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
    for (let k = 0; k < blocks; k++) {
      const module = `layer${i + 1}.${k}`;
      const stride = i > 0 && k === 0 ? 2 : 1;
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
