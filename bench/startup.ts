/**
 * Where a cold `cameras explain` spends its time, in the order the CLI does it, in one fresh process:
 *   node dist/bench/startup.js <model.onnx> <photo> <layer>
 * Prints one JSON line: node's own start, the imports, loading the model (its outline and cached session),
 * reading the photo, the first explain (arenas grow) and a warm one, in seconds.
 */
const boot = performance.now() / 1000; // performance.now() counts from the process's start
const [modelPath, photo, layer] = process.argv.slice(2) as [string, string, string];
const { loadModel } = await import('../src/jobs/loaded-model.js');
const { readImage } = await import('../src/io/image-node.js');
const { preprocess } = await import('../src/io/preprocess.js');
const lap = (() => {
  let last = performance.now();
  return () => {
    const now = performance.now();
    const seconds = (now - last) / 1000;
    last = now;
    return seconds;
  };
})();
const imports = performance.now() / 1000 - boot;
lap();
const model = await loadModel(modelPath, { layer, threads: 2 });
const load = lap();
const tensor = preprocess(await readImage(photo), model.preset, model.size);
const image = lap();
const options = { classIndex: 243, resolutions: model.resolutions };
await model.explainer.explain(tensor, options);
const firstExplain = lap();
await model.explainer.explain(tensor, options);
const warmExplain = lap();
await model.explainer.dispose();
process.stdout.write(`${JSON.stringify({ boot, imports, load, image, firstExplain, warmExplain })}\n`);
