import { CamerasError } from '../errors.js';
import type { StateDict } from './safetensors.js';
import { TorchGraphBuilder } from './torch-builder.js';

/**
 * torchvision's VGG (no batch norm): `features` is conv3x3 + ReLU pairs with a 2x2 max pooling after
 * each stage (read from which indices hold weights), `avgpool` an AdaptiveAvgPool2d(7) and `classifier`
 * Linear-ReLU-Dropout twice then Linear.
 */
export function buildVgg(weights: StateDict): Uint8Array {
  const b = new TorchGraphBuilder(weights, 'vgg');
  const convs = [...weights.keys()]
    .map((k) => /^features\.(\d+)\.weight$/.exec(k)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number);
  if (convs.length === 0) throw new CamerasError('the state dict has no features.N.weight; is it a torchvision VGG?');
  if ([...weights.keys()].some((k) => k.endsWith('running_mean')))
    throw new CamerasError('VGG with batch norm (vgg16_bn) is not supported yet');
  const last = Math.max(...convs) + 2; // the final max pooling
  let x = 'input';
  for (let i = 0; i <= last; i++) {
    if (b.has(`features.${i}.weight`)) {
      x = b.relu(b.conv(x, `features.${i}`, { padding: 1 }), `features.${i + 1}`);
      i++;
    } else {
      x = b.maxPool(x, `features.${i}`, 2, 2);
    }
  }
  x = b.flatten(b.adaptiveAvgPool(x, 'avgpool', 7));
  x = b.relu(b.linear(x, 'classifier.0'), 'classifier.1');
  x = b.relu(b.linear(x, 'classifier.3'), 'classifier.4');
  x = b.linear(x, 'classifier.6');
  return b.finish(x, b.need('classifier.6.weight').shape[0] as number);
}

/**
 * torchvision's DenseNet: `features` (conv0, norm0, relu0, pool0, dense blocks whose layers each see
 * the concatenation of all earlier outputs, transitions, norm5), then ReLU, global average pooling
 * and `classifier`.
 */
export function buildDensenet(weights: StateDict): Uint8Array {
  const b = new TorchGraphBuilder(weights, 'densenet');
  if (!b.has('features.conv0.weight')) throw new CamerasError('the state dict has no features.conv0.weight; is it a torchvision DenseNet?');
  let x = b.conv('input', 'features.conv0', { stride: 2, padding: 3 });
  x = b.maxPool(b.relu(b.batchNorm(x, 'features.norm0'), 'features.relu0'), 'features.pool0', 3, 2, 1);
  for (let block = 1; b.has(`features.denseblock${block}.denselayer1.conv1.weight`); block++) {
    const blockModule = `features.denseblock${block}`;
    const outputs = [x];
    for (let layer = 1; b.has(`${blockModule}.denselayer${layer}.conv1.weight`); layer++) {
      const m = `${blockModule}.denselayer${layer}`;
      const input = outputs.length === 1 ? (outputs[0] as string) : b.node(m, 'Concat', outputs, { axis: 1 });
      let y = b.conv(b.relu(b.batchNorm(input, `${m}.norm1`), `${m}.relu1`), `${m}.conv1`);
      y = b.conv(b.relu(b.batchNorm(y, `${m}.norm2`), `${m}.relu2`), `${m}.conv2`, { padding: 1 });
      outputs.push(y);
    }
    x = b.node(blockModule, 'Concat', outputs, { axis: 1 });
    const t = `features.transition${block}`;
    if (b.has(`${t}.conv.weight`)) {
      x = b.conv(b.relu(b.batchNorm(x, `${t}.norm`), `${t}.relu`), `${t}.conv`);
      x = b.node(`${t}.pool`, 'AveragePool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
    }
  }
  x = b.batchNorm(x, 'features.norm5');
  x = b.graph.addNode('Relu', [x], {}, { name: '/Relu' })[0] as string;
  x = b.flatten(b.graph.addNode('GlobalAveragePool', [x], {}, { name: '/GlobalAveragePool' })[0] as string);
  return b.finish(b.linear(x, 'classifier'), b.need('classifier.weight').shape[0] as number);
}
