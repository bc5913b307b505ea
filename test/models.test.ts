import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildResnet, randomResnetWeights } from '../src/models/resnet.js';
import { parseSafetensors } from '../src/models/safetensors.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { resolveLayer } from '../src/onnx/layers.js';
import { bytes, difference, FIXTURES, hasShared, npy, SHARED_REFERENCE } from './helpers.js';

async function logits(model: Uint8Array, inputPath: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model);
  const x = npy(inputPath);
  const out = await session.run({ input: new ort.Tensor('float32', x.data, x.shape) });
  await session.release();
  return out.logits?.data as Float32Array;
}

function safetensors(entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): Uint8Array {
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const e of entries) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  return out;
}

describe('torchvision ResNet from a state dict', () => {
  it('gives the logits of torch.onnx.export for the same weights (mini_resnet)', async () => {
    const model = buildResnet(parseSafetensors(bytes(resolve(FIXTURES, 'mini_resnet/weights.safetensors'))));
    const ours = await logits(model, resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
    const d = difference(ours, npy(resolve(FIXTURES, 'mini_resnet/cat_dog.logits.npy')).data);
    assert.ok(d.max < 1e-5, `logits differ by ${d.max}`);
  });

  it('keeps torch module scopes, so layers resolve by module path', () => {
    const graph = OnnxGraph.fromBytes(buildResnet(randomResnetWeights('resnet18', 1, 10)));
    assert.equal(resolveLayer(graph, 'layer4').tensor, resolveLayer(graph, '/layer4/layer4.1/relu_1/Relu').tensor);
    assert.equal(resolveLayer(graph, 'layer3.1.bn2').opType, 'BatchNormalization');
  });

  it('extended: gives torchvision resnet18 logits (shared weights)', { skip: hasShared ? false : '../shared not found' }, async () => {
    const folder = resolve(SHARED_REFERENCE, 'resnet18');
    const model = buildResnet(parseSafetensors(bytes(resolve(folder, 'weights.safetensors'))));
    const ours = await logits(model, resolve(folder, 'dog.input.npy'));
    const d = difference(ours, npy(resolve(folder, 'dog.logits.npy')).data);
    assert.ok(d.max < 1e-4, `logits differ by ${d.max}`);
  });

  it('decodes F16 and BF16 weights, and refuses other dtypes by name', () => {
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3555]).buffer); // 1, -2, ~0.3333
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0x4049]).buffer); // 1, ~3.14
    const weights = parseSafetensors(
      safetensors([
        { name: 'a', dtype: 'F16', shape: [3], bytes: f16 },
        { name: 'b', dtype: 'BF16', shape: [2], bytes: bf16 },
      ]),
    );
    assert.deepEqual(
      [...(weights.get('a')?.data ?? [])].map((v) => Math.round(v * 1000) / 1000),
      [1, -2, 0.333],
    );
    assert.deepEqual(
      [...(weights.get('b')?.data ?? [])].map((v) => Math.round(v * 100) / 100),
      [1, 3.14],
    );
    assert.throws(
      () => parseSafetensors(safetensors([{ name: 'i', dtype: 'I64', shape: [1], bytes: new Uint8Array(8) }])),
      /tensor i has dtype I64/,
    );
  });
});
