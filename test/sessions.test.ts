import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import type { InferenceSession } from 'onnxruntime-common';
import * as ort from 'onnxruntime-node';
import type { OrtRuntime } from '../src/engine/runtime.js';
import { Explainer } from '../src/explainer.js';
import { OnnxGraph } from '../src/onnx/graph.js';
import { bytes, FIXTURES, npy, ROOT } from './helpers.js';

/** onnxruntime-node, with every session it is asked to make recorded: the model's bytes and the options. */
function recordingRuntime() {
  const made: { model: Uint8Array | string; options: InferenceSession.SessionOptions }[] = [];
  const runtime = {
    Tensor: ort.Tensor,
    InferenceSession: {
      create: (model: Uint8Array | string, options: InferenceSession.SessionOptions) => {
        made.push({ model, options });
        return ort.InferenceSession.create(model as Uint8Array, options);
      },
    },
  } as unknown as OrtRuntime;
  return { runtime, made };
}

describe("one session factory: every session kind gets the explainer's threads, ONNX Runtime options and MaxPool rule", () => {
  const { runtime, made } = recordingRuntime();
  const model = bytes(resolve(ROOT, 'assets/models/mini_resnet.onnx'));
  const input = npy(resolve(FIXTURES, 'mini_resnet/dog.input.npy'));
  const explainer = Explainer.create(runtime, {
    model,
    threads: 1,
    maxPoolIndices: false,
    sessionOptions: { logId: 'cameras-sessions-test', enableMemPattern: false },
  });
  after(async () => (await explainer).dispose());

  /** The sessions made while `run` ran, each checked for the options. */
  async function sessionsOf(run: () => Promise<unknown>): Promise<typeof made> {
    const before = made.length;
    await run();
    const added = made.slice(before);
    assert.ok(added.length > 0, 'a new session was made');
    for (const { options } of added) {
      assert.equal(options.intraOpNumThreads, 1, 'threads');
      assert.equal(options.logId, 'cameras-sessions-test', 'the caller’s ONNX Runtime options');
      assert.equal(options.enableMemPattern, false);
    }
    return added;
  }

  /** MaxPool nodes of a session's model with the Indices output in use. */
  const indexedMaxPools = (model: Uint8Array | string) =>
    OnnxGraph.fromBytes(model as Uint8Array).nodes.filter((n) => n.opType === 'MaxPool' && (n.output ?? []).filter(Boolean).length > 1)
      .length;

  it('the layer session (made with the explainer)', async () => {
    await explainer;
    const [layer] = made;
    assert.ok(layer);
    assert.equal(layer.options.intraOpNumThreads, 1);
    assert.equal(layer.options.logId, 'cameras-sessions-test');
  });

  it('the input-gradient session, MaxPool back-propagated without its Indices output', async () => {
    const e = await explainer;
    const [session] = await sessionsOf(() => e.explain(input, { method: 'gradient', classIndex: 3 }));
    assert.ok(
      OnnxGraph.fromBytes(model).nodes.some((n) => n.opType === 'MaxPool'),
      'the model has a MaxPool on the path',
    );
    assert.equal(indexedMaxPools((session as (typeof made)[number]).model), 0);
  });

  it('the forward session (Score-CAM)', async () => {
    const e = await explainer;
    await sessionsOf(() => e.explain(input, { method: 'scorecam', classIndex: 3 }));
  });

  it("the network's head (Ablation-CAM)", async () => {
    const e = await explainer;
    await sessionsOf(() => e.explain(input, { method: 'ablationcam', classIndex: 3 }));
  });

  it("CAMERAS' fusion (at layer3, whose gradients vary over the map)", async () => {
    // At layer4 the gradient is constant over each channel (global pooling follows) and fuses in closed form.
    const options = { threads: 1, maxPoolIndices: false, sessionOptions: { logId: 'cameras-sessions-test', enableMemPattern: false } };
    const deeper = await Explainer.create(runtime, { model, layer: 'layer3', ...options });
    try {
      await sessionsOf(() => deeper.explain(input, { classIndex: 3, resolutions: [224, 320] }));
    } finally {
      await deeper.dispose();
    }
  });
});
