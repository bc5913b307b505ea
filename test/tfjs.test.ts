import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { convertTfjsModel, decodeTfjsWeights, TFJS_LAYERS, type TfjsModelJson } from '../src/models/tfjs.js';
import { zooEntry } from '../src/models/zoo.js';
import { bundledModelPath, loadZooModel, resolveModel } from '../src/models/zoo-node.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { resolveLayer } from '../src/onnx/layers.js';
import { difference, ROOT } from './helpers.js';

const require = createRequire(import.meta.url);

/** NHWC -> NCHW for one image. */
function toNchw(data: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[k * h * w + y * w + x] = data[(y * w + x) * c + k] as number;
  return out;
}

async function runOnnx(bytes: Uint8Array, nchw: Float32Array, shape: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort.Tensor('float32', nchw, shape) });
  await session.release();
  return out.output?.data as Float32Array;
}

/** Saves a tfjs model the way tfjs writes model.json and its weights. */
async function artifacts(model: tf.LayersModel): Promise<{ json: TfjsModelJson; weights: Uint8Array }> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const a = saved as tf.io.ModelArtifacts;
  const buffer = a.weightData as ArrayBuffer;
  return {
    json: {
      modelTopology: a.modelTopology as TfjsModelJson['modelTopology'],
      weightsManifest: [{ paths: [], weights: a.weightSpecs as never }],
    },
    weights: new Uint8Array(buffer),
  };
}

function image(h: number, w: number, c: number, seed: number): Float32Array {
  return Float32Array.from({ length: h * w * c }, (_, i) => (Math.sin(i * 0.37 + seed) + 1) / 2);
}

describe('TF.js layers model -> ONNX', () => {
  it('nsfwjs MobileNetV2 (uint8-quantised weights) gives the outputs of tfjs', async () => {
    const base = require.resolve('nsfwjs/models/mobilenet_v2').replace(/cjs[\\/]models[\\/]mobilenet_v2\.js$/, 'models/mobilenet_v2');
    const json = require(`${base}/model.min.js`) as TfjsModelJson;
    const shards = (json.weightsManifest[0]?.paths ?? []).map(
      (p) => new Uint8Array(Buffer.from(require(`${base}/${p}.min.js`) as string, 'base64')),
    );
    const bytes = convertTfjsModel(json, decodeTfjsWeights(json, shards));
    const total = new Uint8Array(shards.reduce((n, s) => n + s.length, 0));
    let at = 0;
    for (const s of shards) {
      total.set(s, at);
      at += s.length;
    }
    const reference = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology as never,
        weightSpecs: json.weightsManifest.flatMap((g) => g.weights) as never,
        weightData: total.buffer,
      }),
    );
    const x = image(224, 224, 3, 1);
    const expected = (reference.predict(tf.tensor4d(x, [1, 224, 224, 3])) as tf.Tensor).dataSync() as Float32Array;
    const ours = await runOnnx(bytes, toNchw(x, 224, 224, 3), [1, 3, 224, 224]);
    const d = difference(ours, expected);
    assert.ok(d.max < 1e-4, `outputs differ by ${d.max}`);
    // The final 7x7 average pooling became global: the model now takes larger inputs.
    const larger = await runOnnx(bytes, toNchw(image(324, 324, 3, 2), 324, 324, 3), [1, 3, 324, 324]);
    assert.equal(larger.length, 5);
  });

  it('a model with every other supported layer kind gives the outputs of tfjs', async () => {
    const input = tf.input({ shape: [20, 18, 3] });
    const padded = tf.layers
      .zeroPadding2d({
        padding: [
          [1, 2],
          [0, 1],
        ],
      })
      .apply(input) as tf.SymbolicTensor;
    const conv = tf.layers
      .conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' })
      .apply(padded) as tf.SymbolicTensor;
    const bn = tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(conv) as tf.SymbolicTensor;
    const separable = tf.layers
      .separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', depthMultiplier: 2 })
      .apply(bn) as tf.SymbolicTensor;
    const depthwise = tf.layers
      .depthwiseConv2d({ kernelSize: 3, padding: 'valid', activation: 'relu6' })
      .apply(separable) as tf.SymbolicTensor;
    const gate = tf.layers.activation({ activation: 'sigmoid' }).apply(depthwise) as tf.SymbolicTensor;
    const gated = tf.layers.multiply().apply([depthwise, gate]) as tf.SymbolicTensor;
    const pooledMax = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(gated) as tf.SymbolicTensor;
    const pooledAvg = tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(pooledMax) as tf.SymbolicTensor;
    const joined = tf.layers.concatenate({ axis: -1 }).apply([pooledAvg, pooledMax]) as tf.SymbolicTensor;
    const relu = tf.layers.reLU({ maxValue: 4 }).apply(joined) as tf.SymbolicTensor;
    const summed = tf.layers.add().apply([relu, joined]) as tf.SymbolicTensor;
    const global = tf.layers.globalAveragePooling2d({}).apply(summed) as tf.SymbolicTensor;
    const flat = tf.layers.flatten().apply(summed) as tf.SymbolicTensor;
    const reshaped = tf.layers.reshape({ targetShape: [(flat.shape[1] as number) / 2, 2] }).apply(flat) as tf.SymbolicTensor;
    const reflat = tf.layers.flatten().apply(reshaped) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 6, activation: 'tanh' }).apply(reflat) as tf.SymbolicTensor;
    const both = tf.layers.concatenate().apply([dense, global]) as tf.SymbolicTensor;
    const dropped = tf.layers.dropout({ rate: 0.5 }).apply(both) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 4, activation: 'softmax' }).apply(dropped) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    // Random batch-norm statistics, so the layer is not an identity.
    const layer = model.layers.find((l) => l.getClassName() === 'BatchNormalization') as tf.layers.Layer;
    layer.setWeights(layer.getWeights().map((w, i) => tf.randomUniform(w.shape, i === 3 ? 0.5 : -0.5, 1.5, 'float32', 7 + i)));
    const { json, weights } = await artifacts(model);
    const bytes = convertTfjsModel(json, decodeTfjsWeights(json, [weights]));
    const x = image(20, 18, 3, 3);
    const expected = (model.predict(tf.tensor4d(x, [1, 20, 18, 3])) as tf.Tensor).dataSync() as Float32Array;
    const ours = await runOnnx(bytes, toNchw(x, 20, 18, 3), [1, 3, 20, 18]);
    const d = difference(ours, expected);
    assert.ok(d.max < 1e-4, `outputs differ by ${d.max}`);
  });

  it('refuses a layer it cannot convert, by class and name', async () => {
    const input = tf.input({ shape: [8, 8, 3] });
    const up = tf.layers.upSampling2d({ size: [2, 2], name: 'grow' }).apply(input) as tf.SymbolicTensor;
    const { json, weights } = await artifacts(tf.model({ inputs: input, outputs: up }));
    assert.throws(
      () => convertTfjsModel(json, decodeTfjsWeights(json, [weights])),
      (error: Error) => {
        assert.match(error.message, /a layer we cannot convert: UpSampling2D 'grow'; supported: /);
        // The refusal lists exactly the converter's table.
        assert.deepEqual(error.message.split('supported: ')[1]?.split(', '), Object.keys(TFJS_LAYERS));
        return true;
      },
    );
  });

  it("the README lists exactly the converter's layer classes", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const listed = /converter \(`src\/models\/tfjs.ts`: ([^;]+);/.exec(readme)?.[1]?.split(/,\s+/);
    assert.deepEqual(listed, Object.keys(TFJS_LAYERS));
  });

  it('decodes uint16-quantised weights', () => {
    const json: TfjsModelJson = {
      modelTopology: {},
      weightsManifest: [
        { paths: [], weights: [{ name: 'a', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', min: -1, scale: 0.5 } }] },
      ],
    };
    const weights = decodeTfjsWeights(json, [new Uint8Array(new Uint16Array([0, 2, 5]).buffer)]);
    assert.deepEqual([...(weights.get('a')?.data ?? [])], [-1, 0, 1.5]);
  });
});

describe('model zoo', () => {
  const cache = mkdtempSync(join(tmpdir(), 'cameras-cache-'));
  process.env.CAMERAS_CACHE_DIR = cache;
  after(() => rmSync(cache, { recursive: true, force: true }));

  it('converts an nsfwjs model once, reads it from the cache, and converts a corrupt cached file again', async () => {
    const entry = zooEntry('nsfwjs:mobilenet_v2');
    assert.ok(entry);
    // As in an install whose build did not ship the model: nothing at the bundled path.
    const missing = join(cache, 'not-shipped.onnx');
    const cached = join(cache, 'nsfwjs_mobilenet_v2.onnx');
    const converted = await loadZooModel(entry, missing);
    assert.ok(existsSync(cached), 'the conversion is kept in the cache');
    // The build's shipped file is the same conversion.
    assert.ok(Buffer.from(converted).equals(readFileSync(bundledModelPath(entry.name))), 'converted = shipped');
    // Read from the cache, not converted again: another valid model put there comes back as it is.
    const other = readFileSync(join(ROOT, 'assets/models/mini_resnet.onnx'));
    writeFileSync(cached, other);
    assert.ok(Buffer.from(await loadZooModel(entry, missing)).equals(other), 'the cached file is read');
    // A corrupt cached file is converted again and replaced.
    writeFileSync(cached, 'not an onnx model');
    const again = await loadZooModel(entry, missing);
    assert.ok(Buffer.from(again).equals(Buffer.from(converted)), 'converted again');
    assert.ok(readFileSync(cached).equals(Buffer.from(converted)), 'the cache holds the new conversion');
    // The default layer resolves in the converted model by its Keras name.
    assert.equal(resolveLayer(OnnxGraph.fromBytes(converted), 'out_relu').opType, 'Clip');
    assert.equal((await resolveModel('nsfwjs:mobilenet_v2')).entry?.layer, 'out_relu');
  });

  it('refuses an unknown zoo name and names the known ones', async () => {
    await assert.rejects(
      resolveModel('nsfwjs:resnet9000'),
      /unknown model 'nsfwjs:resnet9000'; give an \.onnx file or one of: nsfwjs:mobilenet_v2/,
    );
  });
});
