import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildResnet, randomResnetWeights } from '../src/models/resnet.js';
import { parseSafetensors } from '../src/models/safetensors.js';
import { buildDensenet, buildVgg } from '../src/models/vgg-densenet.js';
import { buildGradientGraph } from '../src/onnx/autodiff.js';
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

  for (const [arch, build] of [
    ['vgg16', buildVgg],
    ['densenet121', buildDensenet],
  ] as const) {
    it(`builds torchvision ${arch} (narrow widths) with torchvision's logits at 224 and 320 px, and sound gradients`, async () => {
      const model = build(parseSafetensors(bytes(resolve(FIXTURES, `torch/${arch}.safetensors`))));
      const session = await ort.InferenceSession.create(model);
      // The input scripts/make_fixtures.py used: sin(0.37 i) in float32.
      const input = (size: number) => Float32Array.from({ length: 3 * size * size }, (_, i) => Math.fround(Math.sin(i * 0.37)));
      const run = async (x: Float32Array, size: number) =>
        (await session.run({ input: new ort.Tensor('float32', x, [1, 3, size, size]) })).logits?.data as Float32Array;
      for (const size of [224, 320]) {
        const d = difference(await run(input(size), size), npy(resolve(FIXTURES, `torch/${arch}.${size}.logits.npy`)).data);
        assert.ok(d.max < 1e-5 * Math.max(1, d.scale), `${size} px: logits differ by ${d.max}`);
      }
      // Gradient of logit 3 with respect to the input, against a central difference along one direction.
      const size = 320;
      const graph = buildGradientGraph(model, { targets: ['input'] });
      const backward = await ort.InferenceSession.create(graph.bytes);
      const x = input(size);
      const seed = new Float32Array(10);
      seed[3] = 1;
      const out = await backward.run({
        input: new ort.Tensor('float32', x, [1, 3, size, size]),
        [graph.seed]: new ort.Tensor('float32', seed, [1, 10]),
      });
      const gradient = out[graph.targets[0]?.gradient as string]?.data as Float32Array;
      // A sparse direction (every 997th input) and a small step cross few ReLU kinks.
      const direction = Float32Array.from(x, (_, i) => (i % 997 === 0 ? Math.cos(i * 1.3) : 0));
      const step = 1e-2;
      const shifted = (sign: number) => Float32Array.from(x, (v, i) => v + sign * step * (direction[i] as number));
      const numeric = (((await run(shifted(1), size))[3] as number) - ((await run(shifted(-1), size))[3] as number)) / (2 * step);
      const analytic = gradient.reduce((sum, g, i) => sum + g * (direction[i] as number), 0);
      // A smoke test against gross errors: near-zero pre-activations make ReLU gates differ between the
      // shifted runs (and between runtimes: one gate in the narrow VGG sits at -2e-7 here, +8e-9 in PyTorch),
      // so the bound is loose; every rule is checked tightly on its own in vjp-rules.test.ts.
      assert.ok(
        Math.abs(numeric - analytic) <= 5e-2 * Math.max(1e-3, Math.abs(numeric)),
        `finite difference ${numeric} vs gradient ${analytic}`,
      );
      await session.release();
      await backward.release();
    });
  }

  it('decodes F16 and BF16 weights, skips integer buffers, and refuses other dtypes by name', () => {
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
    // Integer buffers (num_batches_tracked) are skipped; a dtype we cannot read is refused by name.
    const withCounter = parseSafetensors(
      safetensors([
        { name: 'bn.num_batches_tracked', dtype: 'I64', shape: [], bytes: new Uint8Array(8) },
        { name: 'a', dtype: 'F16', shape: [3], bytes: f16 },
      ]),
    );
    assert.deepEqual([...withCounter.keys()], ['a']);
    assert.throws(
      () => parseSafetensors(safetensors([{ name: 'z', dtype: 'C64', shape: [1], bytes: new Uint8Array(8) }])),
      /tensor z has dtype C64; only F64, F32, F16 and BF16 weights are supported/,
    );
  });
});
