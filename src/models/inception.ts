import { CamerasError } from '../errors.js';
import type { StateDict } from './safetensors.js';
import { TorchGraphBuilder } from './torch-builder.js';

/**
 * torchvision's Inception-v3 (Szegedy et al.; the CAMERAS paper's fourth model): BasicConv2d = conv
 * without bias + batch norm (eps 0.001) + ReLU; padding is `(k - 1) / 2` per axis except the valid and
 * strided convolutions named below. The auxiliary classifier is training-only and left out.
 * `transformInput` reproduces torchvision's `transform_input=True` (set for its ImageNet weights): the
 * ImageNet-normalised input is re-normalised to mean 0.5, std 0.5 per channel.
 */
export function buildInception(weights: StateDict, options: { transformInput?: boolean } = {}): Uint8Array {
  const b = new TorchGraphBuilder(weights, 'inception_v3');
  if (!b.has('Conv2d_1a_3x3.conv.weight'))
    throw new CamerasError('the state dict has no Conv2d_1a_3x3.conv.weight; is it a torchvision Inception-v3?');
  const basic = (x: string, module: string, stride = 1, valid = false): string => {
    const w = b.need(`${module}.conv.weight`);
    const [kh, kw] = w.shape.slice(2) as [number, number];
    const [ph, pw] = valid ? [0, 0] : [(kh - 1) / 2, (kw - 1) / 2];
    const y = b.node(`${module}.conv`, 'Conv', [x, b.constant(`${module}.conv.weight`)], {
      kernel_shape: [kh, kw],
      strides: [stride, stride],
      pads: [ph, pw, ph, pw],
    });
    return b.relu(b.batchNorm(y, `${module}.bn`, 0.001), `${module}`);
  };
  const avg3 = (x: string, module: string) =>
    b.node(module, 'AveragePool', [x], { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 1 });
  const max3 = (x: string, module: string) => b.maxPool(x, module, 3, 2);
  const concat = (module: string, parts: string[]) => b.node(module, 'Concat', parts, { axis: 1 });

  let x = 'input';
  if (options.transformInput) {
    // x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5, as torchvision's _transform_input.
    const scale = b.graph.addConstant('transform_scale', [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5], [1, 3, 1, 1]);
    const shift = b.graph.addConstant('transform_shift', [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5], [1, 3, 1, 1]);
    x = b.graph.addNode(
      'Add',
      [b.graph.addNode('Mul', [x, scale], {}, { name: '/Mul' })[0] as string, shift],
      {},
      { name: '/Add' },
    )[0] as string;
  }
  x = basic(x, 'Conv2d_1a_3x3', 2, true);
  x = basic(x, 'Conv2d_2a_3x3', 1, true);
  x = max3(basic(x, 'Conv2d_2b_3x3'), 'maxpool1');
  x = basic(x, 'Conv2d_3b_1x1');
  x = max3(basic(x, 'Conv2d_4a_3x3', 1, true), 'maxpool2');
  for (const m of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) {
    const b1 = basic(x, `${m}.branch1x1`);
    const b5 = basic(basic(x, `${m}.branch5x5_1`), `${m}.branch5x5_2`);
    const b3 = basic(basic(basic(x, `${m}.branch3x3dbl_1`), `${m}.branch3x3dbl_2`), `${m}.branch3x3dbl_3`);
    const bp = basic(avg3(x, `${m}.avg_pool2d`), `${m}.branch_pool`);
    x = concat(m, [b1, b5, b3, bp]);
  }
  {
    const m = 'Mixed_6a';
    const b3 = basic(x, `${m}.branch3x3`, 2, true);
    const bd = basic(basic(basic(x, `${m}.branch3x3dbl_1`), `${m}.branch3x3dbl_2`), `${m}.branch3x3dbl_3`, 2, true);
    x = concat(m, [b3, bd, max3(x, `${m}.max_pool2d`)]);
  }
  for (const m of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) {
    const b1 = basic(x, `${m}.branch1x1`);
    const b7 = basic(basic(basic(x, `${m}.branch7x7_1`), `${m}.branch7x7_2`), `${m}.branch7x7_3`);
    let bd = basic(x, `${m}.branch7x7dbl_1`);
    for (const k of [2, 3, 4, 5]) bd = basic(bd, `${m}.branch7x7dbl_${k}`);
    const bp = basic(avg3(x, `${m}.avg_pool2d`), `${m}.branch_pool`);
    x = concat(m, [b1, b7, bd, bp]);
  }
  {
    const m = 'Mixed_7a';
    const b3 = basic(basic(x, `${m}.branch3x3_1`), `${m}.branch3x3_2`, 2, true);
    let b7 = basic(x, `${m}.branch7x7x3_1`);
    b7 = basic(basic(b7, `${m}.branch7x7x3_2`), `${m}.branch7x7x3_3`);
    b7 = basic(b7, `${m}.branch7x7x3_4`, 2, true);
    x = concat(m, [b3, b7, max3(x, `${m}.max_pool2d`)]);
  }
  for (const m of ['Mixed_7b', 'Mixed_7c']) {
    const b1 = basic(x, `${m}.branch1x1`);
    const t = basic(x, `${m}.branch3x3_1`);
    const b3 = b.node(`${m}`, 'Concat', [basic(t, `${m}.branch3x3_2a`), basic(t, `${m}.branch3x3_2b`)], { axis: 1 });
    const d = basic(basic(x, `${m}.branch3x3dbl_1`), `${m}.branch3x3dbl_2`);
    const bd = b.node(`${m}`, 'Concat', [basic(d, `${m}.branch3x3dbl_3a`), basic(d, `${m}.branch3x3dbl_3b`)], { axis: 1 });
    const bp = basic(avg3(x, `${m}.avg_pool2d`), `${m}.branch_pool`);
    x = concat(m, [b1, b3, bd, bp]);
  }
  const pooled = b.node('avgpool', 'GlobalAveragePool', [x]);
  return b.finish(b.linear(b.flatten(pooled), 'fc'), b.need('fc.weight').shape[0] as number);
}
