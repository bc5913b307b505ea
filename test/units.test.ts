import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { resizeBicubic, resizeBilinear } from '../src/engine/resize.js';
import { CamerasError } from '../src/errors.js';
import { readImage } from '../src/io/image-node.js';
import { formatNpy, parseNpy } from '../src/io/npy.js';
import { preprocess, presetByName } from '../src/io/preprocess.js';
import { fuseScales } from '../src/methods/cameras.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { defaultLayer, modulePath, resolveLayer } from '../src/onnx/layers.js';
import { bytes, difference, FIXTURES, npy, ROOT } from './helpers.js';

describe('.npy files', () => {
  it('round-trips float32 arrays byte-exactly with a 64-byte aligned header', () => {
    const data = Float32Array.from({ length: 24 }, (_, i) => i / 7 - 1);
    const bytesOut = formatNpy({ data, shape: [2, 3, 4] });
    const header = bytesOut[8] as number;
    assert.equal((10 + header) % 64, 0);
    const back = parseNpy(bytesOut);
    assert.deepEqual(back.shape, [2, 3, 4]);
    assert.deepEqual([...back.data], [...data]);
  });
  it('reads the reference files numpy wrote', () => {
    const x = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
    assert.deepEqual(x.shape, [1, 3, 224, 224]);
    // ImageNet-normalised pixels lie within [-2.12, 2.64].
    assert.ok(x.data.every((v) => v >= -2.12 && v <= 2.65));
  });
  it('refuses what is not a C-ordered float .npy, in one line', () => {
    assert.throws(() => parseNpy(new Uint8Array([1, 2, 3])), /is not a \.npy file/);
    const fortran = formatNpy({ data: new Float32Array(4), shape: [2, 2] });
    const at = new TextDecoder('latin1').decode(fortran).indexOf('False');
    fortran.set(new TextEncoder().encode('True '), at);
    assert.throws(() => parseNpy(fortran), /Fortran order/);
    const truncated = formatNpy({ data: new Float32Array(16), shape: [4, 4] }).subarray(0, 100);
    assert.throws(() => parseNpy(truncated), CamerasError);
  });
});

describe('resampling equals PyTorch F.interpolate (align_corners=False)', () => {
  const cases = JSON.parse(readFileSync(resolve(FIXTURES, 'torch/cases.json'), 'utf8')) as {
    resize: { mode: string; size: [number, number]; output: string }[];
  };
  const input = npy(resolve(FIXTURES, 'torch/resize.input.npy'));
  for (const c of cases.resize) {
    it(`${c.mode} 9x11 -> ${c.size.join('x')}`, () => {
      const expected = npy(resolve(FIXTURES, `torch/${c.output}`));
      const resize = c.mode === 'bicubic' ? resizeBicubic : resizeBilinear;
      const ours = resize(input.data, input.shape, c.size[0], c.size[1]);
      const d = difference(ours, expected.data);
      assert.ok(d.max <= 2e-6, `max diff ${d.max}`);
    });
  }
});

describe('fusion', () => {
  it('returns zeros and empty: true where the reference returns NaN', () => {
    const activation = { data: new Float32Array(2 * 3 * 3).fill(1), shape: [1, 2, 3, 3] };
    const gradient = { data: new Float32Array(2 * 3 * 3).fill(-1), shape: [1, 2, 3, 3] };
    const fused = fuseScales([{ activation, gradient }], 8);
    assert.equal(fused.empty, true);
    assert.ok(fused.map.every((v) => v === 0));
  });
  it('is min-max normalised to [0, 1]', () => {
    const activation = { data: Float32Array.from({ length: 9 }, (_, i) => i), shape: [1, 1, 3, 3] };
    const gradient = { data: new Float32Array(9).fill(1), shape: [1, 1, 3, 3] };
    const fused = fuseScales([{ activation, gradient }], 6);
    assert.equal(Math.min(...fused.map), 0);
    assert.equal(Math.max(...fused.map), 1);
    assert.equal(fused.empty, false);
  });
});

describe('image decoding', () => {
  it('turns a photo upright by its EXIF orientation, reads WebP, composites transparency on white', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'cameras-images-'));
    try {
      const pixels = Buffer.alloc(40 * 20 * 3, 200);
      // Stored 40 wide and 20 high, tagged "rotate 90 degrees clockwise to display" (orientation 6).
      await sharp(pixels, { raw: { width: 40, height: 20, channels: 3 } })
        .jpeg()
        .withMetadata({ orientation: 6 })
        .toFile(join(folder, 'rotated.jpg'));
      const upright = await readImage(join(folder, 'rotated.jpg'));
      assert.deepEqual([upright.width, upright.height], [20, 40]);
      await sharp(pixels, { raw: { width: 40, height: 20, channels: 3 } })
        .webp({ lossless: true })
        .toFile(join(folder, 'photo.webp'));
      const webp = await readImage(join(folder, 'photo.webp'));
      assert.deepEqual([webp.width, webp.height, webp.data[0]], [40, 20, 200]);
      // A transparent PNG whose hidden colour is red: seen as a viewer shows it, white.
      const rgba = Buffer.alloc(4 * 4 * 4);
      for (let i = 0; i < 16; i++) rgba.set([255, 0, 0, 0], 4 * i);
      await sharp(rgba, { raw: { width: 4, height: 4, channels: 4 } })
        .png()
        .toFile(join(folder, 'clear.png'));
      const clear = await readImage(join(folder, 'clear.png'));
      assert.deepEqual([...clear.data.subarray(0, 3)], [255, 255, 255]);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe("preprocessing equals the authors' demo", () => {
  it('cat_dog.png through the torchvision preset is the reference input tensor to the bit (cv2 resize, /255, float32 mean and std)', async () => {
    const tensor = preprocess(await readImage(resolve(ROOT, 'assets/images/cat_dog.png')), presetByName('torchvision'));
    const reference = npy(resolve(FIXTURES, 'mini_resnet/cat_dog.input.npy'));
    assert.deepEqual(tensor.shape, reference.shape);
    // Normalising with the float64 mean and std instead of torchvision's float32 ones moved 100,052 values by an ulp.
    assert.deepEqual([...tensor.data], [...reference.data]);
  });
});

describe('the graph index', () => {
  it('replaceNodes re-indexes producers and consumers from the new node list', () => {
    const g = OnnxGraph.empty('index');
    g.addInput('x', 1, [1]);
    const [a] = g.addNode('Relu', ['x'], {}, { outputs: ['a'] });
    const [b] = g.addNode('Neg', [a as string], {}, { outputs: ['b'] });
    assert.equal(g.producers.get('b')?.node.opType, 'Neg');
    assert.deepEqual(
      g.consumers.get('a')?.map((n) => n.opType),
      ['Neg'],
    );
    // Keep the Relu alone: 'b' has no producer any more, and nothing reads 'a'.
    g.replaceNodes(g.nodes.filter((n) => n.opType === 'Relu'));
    assert.equal(g.producers.get(b as string), undefined);
    assert.equal(g.consumers.get('a'), undefined);
    assert.equal(g.producers.get('a')?.node.opType, 'Relu');
  });
});

describe('layers', () => {
  const graph = OnnxGraph.fromBytes(bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx')));
  it('turns exported node names into torch module paths', () => {
    assert.equal(modulePath('/layer4/layer4.1/conv1/Conv'), 'layer4.1.conv1');
    assert.equal(modulePath('/layer4/layer4.0/downsample/downsample.0/Conv'), 'layer4.0.downsample.0');
    assert.equal(modulePath('/features/features.29/Relu'), 'features.29');
    assert.equal(modulePath('/Flatten'), undefined);
    assert.equal(modulePath('Conv_12'), undefined);
  });
  it('resolves a module to the last tensor it makes that is used outside it', () => {
    assert.equal(resolveLayer(graph, 'layer4').tensor, '/layer4/layer4.0/relu_1/Relu_output_0');
    assert.equal(resolveLayer(graph, 'layer2.0.downsample').tensor, '/layer2/layer2.0/downsample/downsample.0/Conv_output_0');
  });
  it('resolves tensor and node names as given', () => {
    assert.equal(resolveLayer(graph, '/layer3/layer3.0/Add_output_0').tensor, '/layer3/layer3.0/Add_output_0');
    assert.equal(resolveLayer(graph, '/layer3/layer3.0/conv1/Conv').tensor, '/layer3/layer3.0/conv1/Conv_output_0');
  });
  it('names the nearest layers for an unknown one', () => {
    assert.throws(() => resolveLayer(graph, 'layr4'), /unknown layer 'layr4'; nearest valid names: layer4,/);
  });
  it('defaults to the input of the global pooling', () => {
    assert.equal(defaultLayer(graph).name, 'layer4');
  });
});
