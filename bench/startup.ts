/**
 * Where a cold `cameras explain` spends its time, in the order the CLI does it, in one fresh process:
 *   node dist/bench/startup.js <model.onnx> <photo> <layer>
 * Prints one JSON line: node's own start, the imports, loading the model (its outline and cached session),
 * reading the photo, the first explain (arenas grow) and a warm one, in seconds.
 */
const boot = performance.now() / 1000; // performance.now() counts from the process's start
const [modelPath, photo, layer] = process.argv.slice(2) as [string, string, string];
const { openExplainer } = await import('../src/models/open-node.js');
const { readImage } = await import('../src/io/image-node.js');
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
const explainer = await openExplainer(modelPath, { layer, threads: 2 });
const load = lap();
const tensor = explainer.preprocess(await readImage(photo));
const image = lap();
const options = { classIndex: 243 };
await explainer.explain(tensor, options);
const firstExplain = lap();
await explainer.explain(tensor, options);
const warmExplain = lap();
await explainer.dispose();
process.stdout.write(`${JSON.stringify({ boot, imports, load, image, firstExplain, warmExplain })}\n`);
