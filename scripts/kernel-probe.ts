// Prints mini_resnet's logits on a fixed input as JSON. Run natively and under an emulated CPU, the two show
// whether ONNX Runtime took other kernels there (test/avx2-parity.test.ts).
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';

/** The fixed input both runs classify. */
export function probeInput(): Record<string, ort.Tensor> {
  const x = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.fround(Math.sin(i * 0.37)));
  return { input: new ort.Tensor('float32', x, [1, 3, 224, 224]) };
}

export async function probeLogits(): Promise<number[]> {
  const session = await ort.InferenceSession.create(fileURLToPath(new URL('../../assets/models/mini_resnet.onnx', import.meta.url)));
  try {
    return Array.from((await session.run(probeInput())).logits?.data as Float32Array);
  } finally {
    await session.release();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${JSON.stringify(await probeLogits())}\n`);
