/**
 * Build step: the bundled nsfwjs models converted from TF.js to ONNX once, into assets/models/, so the package
 * ships ONNX files (for Node and the browser page alike) and nsfwjs/TF.js stay devDependencies. A model whose file
 * exists and parses is kept.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { bundledModelPath, convertNsfwjs } from '../src/models/zoo-node.js';
import { OnnxGraph } from '../src/onnx/graph.js';

for (const name of ['nsfwjs:mobilenet_v2', 'nsfwjs:inception_v3']) {
  const path = bundledModelPath(name);
  const existing = await readFile(path).catch(() => undefined);
  if (existing) {
    try {
      OnnxGraph.fromBytes(new Uint8Array(existing), path);
      continue;
    } catch {
      // cut short or stale: converted again below
    }
  }
  const started = performance.now();
  const bytes = await convertNsfwjs(name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.partial`, bytes);
  await rename(`${path}.partial`, path);
  process.stderr.write(
    `built ${path} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, ${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
  );
}
