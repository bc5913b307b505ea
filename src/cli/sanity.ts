import { basename, dirname, extname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Explainer } from '../explainer.js';
import { writeFileAtomic } from '../io/files-node.js';
import { readImage } from '../io/image-node.js';
import { preprocess, presetByName } from '../io/preprocess.js';
import { methodByName } from '../methods/registry.js';
import { type AttributionView, type RandomisationMode, type SanityReport, sanityCheck } from '../metrics/sanity.js';
import { declaredProfile } from '../models/open-node.js';
import { resolveProfile } from '../models/profile.js';
import { resolveModel } from '../models/zoo-node.js';
import { OnnxGraph } from '../onnx/graph.js';
import type { ColormapName } from '../render/colormap.js';
import { type PanelRow, renderPanel } from '../render/panel-node.js';
import { curvesSpec, renderSvg } from '../render/plots.js';
import { checkWritable } from './explain.js';
import { Progress } from './progress.js';
import { formatTable } from './table.js';

export interface SanityFlags {
  model: string;
  weights?: string;
  layer?: string;
  methods: string[];
  mode: RandomisationMode;
  attributionView: AttributionView;
  depths?: number[];
  seed?: number;
  out?: string;
  json?: boolean;
  colormap?: ColormapName;
  threads?: number;
  quiet?: boolean;
}

/** `cameras sanity`: the maps of each method as the model's layers are randomised, a grid and the similarities. */
export async function sanityCommand(image: string, flags: SanityFlags): Promise<void> {
  for (const method of flags.methods) methodByName(method);
  const out = flags.out ?? `${basename(image, extname(image))}.sanity.png`;
  await checkWritable(out);
  const model = await resolveModel(flags.model, flags.weights);
  // The randomised copies are explained as the trained model is: one profile for all of them.
  const profile = resolveProfile(
    OnnxGraph.fromBytes(model.bytes, model.source),
    declaredProfile(flags.model, model.entry, flags.layer ? { layer: flags.layer } : {}),
    model.source,
  );
  const picture = await readImage(image);
  const input = preprocess(picture, presetByName(profile.preprocess), profile.inputSize);
  const bar = new Progress('sanity', flags.quiet, 'sanity {bar} {value}/{total} maps | ETA {eta_formatted}');
  let started = false;
  let report: SanityReport;
  try {
    report = await sanityCheck(
      (bytes) => Explainer.create(ort, { model: bytes, profile, threads: flags.threads, source: model.source }),
      model.bytes,
      input,
      flags.methods,
      {
        mode: flags.mode,
        attributionView: flags.attributionView,
        depths: flags.depths,
        seed: flags.seed,
        onProgress: (_done, total) => {
          if (!started) bar.start(total, 0);
          started = true;
          bar.increment();
        },
      },
    );
  } finally {
    bar.stop();
  }
  const rows: PanelRow[] = flags.methods.map((method) => ({
    title: `${method}: the trained model, then ${flags.mode === 'cascading' ? 'the top k layers' : 'layer k alone'} randomised (Spearman |map|)`,
    image: picture,
    map: report.original[method] as PanelRow['map'],
    scales: report.steps.map((step) => ({
      resolution: step.depth,
      map: step.maps[method] as PanelRow['map'],
      caption: `k = ${step.depth}: ${(step.similarity[method]?.spearmanAbs ?? Number.NaN).toFixed(2)}`,
    })),
  }));
  const grid = await renderPanel(rows, { colormap: flags.colormap });
  await writeFileAtomic(out, grid);
  // The similarity curves: how fast each method's map leaves the trained model's as layers are randomised.
  const plot = join(dirname(out), `${basename(out, extname(out))}.curves.svg`);
  const panels = (['spearmanAbs', 'ssim'] as const).map((measure) => ({
    title: measure === 'ssim' ? 'SSIM' : 'Spearman rank correlation, |map|',
    points: report.steps.flatMap((step) =>
      flags.methods.map((method) => ({ series: method, x: step.depth, y: step.similarity[method]?.[measure] ?? Number.NaN })),
    ),
  }));
  const xTitle = flags.mode === 'cascading' ? 'layers randomised from the logits' : 'layer randomised (from the logits)';
  const svg = await renderSvg(curvesSpec(panels, { x: xTitle, y: 'similarity to the trained model', yDomain: [-1, 1] }));
  await writeFileAtomic(plot, new TextEncoder().encode(svg));
  // One self-contained page: the table, the curves and the grid (embedded).
  const page = join(dirname(out), `${basename(out, extname(out))}.html`);
  const cells = report.steps.flatMap((step) =>
    flags.methods.map((method) => {
      const s = step.similarity[method];
      return `<tr><td>${method}</td><td>${step.depth}</td>${[s?.spearmanAbs, s?.spearmanSigned, s?.ssim, s?.spearmanHog].map((v) => `<td>${(v ?? Number.NaN).toFixed(3)}</td>`).join('')}</tr>`;
    }),
  );
  const html = `<!doctype html><html lang="en"><meta charset="utf-8"><title>cameras sanity</title><style>body{font-family:DejaVu Sans,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}img{max-width:100%}</style><h1>Model-randomisation sanity check</h1><p>${basename(image)}, model ${flags.model}, class ${report.classIndex}: ${report.mode} randomisation of ${report.layers.length} weighted layers from the logits down (k = layers randomised). A method passes when its maps move away from the trained model's.</p><table><tr><th>method</th><th>k</th><th>Spearman |map|</th><th>Spearman signed</th><th>SSIM</th><th>Spearman HOG</th></tr>${cells.join('')}</table>${svg}<h2>Maps</h2><img alt="the maps of each method as layers are randomised" src="data:image/png;base64,${Buffer.from(grid).toString('base64')}"></html>\n`;
  await writeFileAtomic(page, new TextEncoder().encode(html));
  if (flags.json) {
    const lines = report.steps.flatMap((step) =>
      flags.methods.map((method) => ({ method, mode: report.mode, depth: step.depth, layers: step.layers, ...step.similarity[method] })),
    );
    for (const line of lines) process.stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  if (flags.quiet) return;
  const header = ['method', 'k', 'spearman |map|', 'spearman signed', 'SSIM', 'spearman HOG'];
  const table = report.steps.flatMap((step) =>
    flags.methods.map((method) => {
      const s = step.similarity[method];
      return [
        method,
        String(step.depth),
        s?.spearmanAbs.toFixed(3),
        s?.spearmanSigned.toFixed(3),
        s?.ssim.toFixed(3),
        s?.spearmanHog.toFixed(3),
      ] as string[];
    }),
  );
  process.stdout.write(
    `class ${report.classIndex}; ${report.mode} randomisation of ${report.layers.length} weighted layers from the logits down (k = layers randomised)\n${formatTable(header, table)}\nwrote ${out}, ${plot} and ${page}\n`,
  );
}
