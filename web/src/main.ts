// The page: controls, the worker that runs the library, and the pictures it draws.
import {
  COLORMAPS_NAMES,
  type ColormapName,
  DEFAULT_METHOD,
  METHODS,
  renderHeat,
  resizeBilinear,
  resizeLinearUint8,
  type Target,
  ZOO,
} from '../../src/core.ts';
import type { FromWorker, ListedDetection, MethodResult, ModelSpec, ToWorker } from './protocol.ts';

declare global {
  interface Window {
    /** For tests: the first method's map and classes after each run. */
    camerasLastResult?: {
      map: number[];
      width: number;
      height: number;
      classPerResolution?: Record<string, number>;
      method: string;
      target: string;
      detections?: ListedDetection[];
      detection?: number;
    };
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const progress = $<HTMLProgressElement>('progress');
const runButton = $<HTMLButtonElement>('run');
const modelSelect = $<HTMLSelectElement>('model-select');
const methodSelect = $<HTMLSelectElement>('method-select');
const classSelect = $<HTMLSelectElement>('class-select');
const contrastSelect = $<HTMLSelectElement>('contrast-select');
const targetSelect = $<HTMLSelectElement>('target-select');
const resolutionsInput = $<HTMLInputElement>('resolutions');
const colormapSelect = $<HTMLSelectElement>('colormap-select');
const opacityInput = $<HTMLInputElement>('opacity');
const canvas = $<HTMLCanvasElement>('result-canvas');
const detectionSelect = $<HTMLSelectElement>('detection-select');

/** Bundled models: ONNX files the build made, served from models/. */
const BUNDLED: Record<string, string> = {
  'nsfwjs:mobilenet_v2': 'models/nsfwjs_mobilenet_v2.onnx',
  'nsfwjs:inception_v3': 'models/nsfwjs_inception_v3.onnx',
  'composite:fashion': 'models/composite_fashion.onnx',
  'composite:fashion-single-scale': 'models/composite_fashion_single_scale.onnx',
  'composite:vit': 'models/composite_vit.onnx',
  'composite:detector': 'models/composite_detector.onnx',
  'composite:segmenter': 'models/composite_segmenter.onnx',
};

function setStatus(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
}

for (const name of Object.keys(BUNDLED)) {
  const entry = ZOO.find((e) => e.name === name);
  modelSelect.append(new Option(`${name}${entry ? `: ${entry.description.split(':')[0]}` : ''}`, name));
}
for (const method of METHODS) methodSelect.append(new Option(method, method, method === DEFAULT_METHOD, method === DEFAULT_METHOD));
for (const name of COLORMAPS_NAMES) colormapSelect.append(new Option(name, name));

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (message: ToWorker, transfer: Transferable[] = []) => worker.postMessage(message, transfer);

let labels: string[] | undefined;
type Picture = { data: Uint8Array; width: number; height: number };
let image: (Picture & { name: string }) | undefined;
/** The photo a run explained, at most DISPLAY px on its long side: overlays keep its aspect, as the CLI's do. */
let explainedPhoto: Picture | undefined;
/** The chosen image a run was started on: a result for an image chosen away from since is not drawn. */
let explainedImage: typeof image;
let last: (Extract<FromWorker, { type: 'result' }> & { photo: Picture }) | undefined;
let busy = false;
const DISPLAY = 1024;

/** While a model loads or a run goes, Run and the model controls wait (the worker holds one model at a time); Run also waits for an image. */
function setBusy(value: boolean): void {
  busy = value;
  for (const control of [modelSelect, $<HTMLInputElement>('model-file'), $<HTMLInputElement>('model-url')]) control.disabled = value;
  runButton.disabled = value || !image;
}

/** The photo for display: its own size up to DISPLAY px on the long side, aspect kept. */
function forDisplay(photo: Picture): Picture {
  const scale = Math.min(1, DISPLAY / Math.max(photo.width, photo.height));
  if (scale === 1) return photo;
  const width = Math.max(1, Math.round(photo.width * scale));
  const height = Math.max(1, Math.round(photo.height * scale));
  return { data: resizeLinearUint8(photo, width, height).data, width, height };
}

/** Removes the last run's pictures: they belong to an image no longer chosen. */
function clearResults(): void {
  last = undefined;
  window.camerasLastResult = undefined;
  $('results').replaceChildren($('main-figure'));
  $('scales').replaceChildren();
  canvas.width = 0;
  canvas.height = 0;
  $('main-figure').hidden = true;
  $('main-caption').textContent = '';
  $('download').hidden = true;
}

function loadModel(spec: ModelSpec, transfer: Transferable[] = []): void {
  setBusy(true);
  setStatus(`Loading ${spec.name}…`);
  send({ type: 'load', model: spec }, transfer);
}

function labelOf(index: number): string {
  return labels?.[index] ? `${index} ${labels[index]}` : String(index);
}

/** What a result explains: its class with its label and probability, or its target where the output has no classes. */
function explained(r: { classIndex?: number; probability?: number; target: string }): string {
  if (r.classIndex === undefined) return r.target;
  return `${labelOf(r.classIndex)}${r.probability === undefined ? '' : ` (p = ${r.probability.toFixed(3)})`}`;
}

/** A detection as the page names it: its place, label, score and box. */
function describeDetection(detections: ListedDetection[], index: number): string {
  const d = detections[index];
  if (!d) return '';
  return `detection ${index} (${labels?.[d.label] ?? `class ${d.label}`}, ${d.score.toFixed(2)}, at ${d.box.map((v) => Math.round(v)).join(',')})`;
}

/** The detections of the last run, to pick from (a click on a box picks it too); hidden for other models. */
function fillDetections(detections: ListedDetection[] | undefined, chosen: number | undefined): void {
  $('detection-box').hidden = !detections;
  detectionSelect.replaceChildren(...(detections ?? []).map((_, i) => new Option(describeDetection(detections ?? [], i), String(i))));
  if (chosen !== undefined) detectionSelect.value = String(chosen);
}

function fillClasses(options: { index: number; probability?: number }[]): void {
  for (const select of [classSelect, contrastSelect]) {
    const keep = select.value;
    select.replaceChildren(...(select === classSelect ? [new Option('top-1', '')] : []));
    for (const { index, probability } of options)
      select.append(new Option(`${labelOf(index)}${probability === undefined ? '' : ` (p = ${probability.toFixed(3)})`}`, String(index)));
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }
}

worker.onmessage = (event: MessageEvent<FromWorker>) => {
  const message = event.data;
  if (message.type === 'loaded') {
    labels = message.info.labels;
    resolutionsInput.value = message.info.resolutions.join(',');
    const list = $<HTMLDataListElement>('labels');
    list.replaceChildren(...(labels ?? []).map((l) => new Option(l)));
    fillClasses((labels ?? []).map((_, index) => ({ index })));
    setStatus(
      `${message.info.name} ready (${message.info.backend}, layer ${message.info.layer}, loaded in ${message.info.seconds.toFixed(1)} s)${
        image ? '' : '; choose or drop an image'
      }`,
    );
    $('timings').textContent = `backend: ${message.info.backend}`;
    setBusy(false);
  } else if (message.type === 'progress') {
    progress.max = message.total;
    progress.value = message.done;
    setStatus(`${message.method}: ${message.done} of ${message.total}…`);
  } else if (message.type === 'result') {
    if (explainedImage !== image) {
      setStatus(`the run finished for ${explainedImage?.name ?? 'an earlier image'}, no longer chosen: press Explain`);
      setBusy(false);
      return;
    }
    last = { ...message, photo: explainedPhoto ?? message.input };
    fillClasses(message.top);
    fillDetections(message.detections, message.detection);
    draw();
    const first = message.results[0] as MethodResult;
    window.camerasLastResult = {
      map: Array.from(first.map),
      width: first.width,
      height: first.height,
      classPerResolution: first.classPerResolution,
      method: first.method,
      target: first.target,
      ...(message.detections ? { detections: message.detections, detection: message.detection } : {}),
    };
    const which = message.detections ? `${describeDetection(message.detections, message.detection ?? 0)}: ` : '';
    setStatus(`Done: ${which}${message.results.map((r) => `${r.method} explains ${explained(r)}`).join('; ')}`);
    $('timings').textContent = message.results.map((r) => `${r.method} ${r.seconds.toFixed(2)} s`).join(', ');
    setBusy(false);
  } else {
    setStatus(message.message, true);
    setBusy(false);
  }
};

function heat(map: Float32Array, w: number, h: number, width: number, height: number, base?: Uint8Array): ImageData {
  const resized = w === width && h === height ? map : resizeBilinear(map, [1, 1, h, w], height, width);
  const rgb = renderHeat(resized, width, height, {
    colormap: colormapSelect.value as ColormapName,
    opacity: Number(opacityInput.value),
    ...(base ? { image: base } : {}),
  });
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba.set(rgb.subarray(3 * p, 3 * p + 3), 4 * p);
    rgba[4 * p + 3] = 255;
  }
  return new ImageData(rgba, width, height);
}

function figure(data: ImageData, caption: string, into: HTMLElement, target?: HTMLCanvasElement): HTMLCanvasElement {
  const c = target ?? document.createElement('canvas');
  c.width = data.width;
  c.height = data.height;
  c.getContext('2d')?.putImageData(data, 0, 0);
  if (!target) {
    const f = document.createElement('figure');
    const text = document.createElement('figcaption');
    text.textContent = caption;
    c.setAttribute('aria-label', caption);
    f.append(c, text);
    into.append(f);
  }
  return c;
}

/** The overlay of the first method on the main canvas, the others beside it, and CAMERAS' scales in a strip. */
function draw(): void {
  if (!last) return;
  const { photo, results } = last;
  const resultsBox = $('results');
  const scales = $('scales');
  resultsBox.replaceChildren($('main-figure'));
  scales.replaceChildren();
  results.forEach((r, i) => {
    const picture = heat(r.map, r.width, r.height, photo.width, photo.height, photo.data);
    const caption = `${r.method}: ${r.classIndex === undefined ? r.target : labelOf(r.classIndex)}, ${r.seconds.toFixed(2)} s`;
    if (i === 0) {
      figure(picture, caption, resultsBox, canvas);
      drawBoxes(canvas, last?.detections, last?.detection);
      $('main-caption').textContent = caption;
    } else drawBoxes(figure(picture, caption, resultsBox), last?.detections, last?.detection);
    for (const s of r.scaleMaps ?? []) figure(heat(s.map, s.width, s.height, photo.width, photo.height), `${s.resolution} px`, scales);
  });
  $('main-figure').hidden = false;
  $('download').hidden = false;
}

/** A detector's boxes over an overlay of the explained photo: the explained one bold, its label above it. */
function drawBoxes(target: HTMLCanvasElement, detections: ListedDetection[] | undefined, chosen: number | undefined): void {
  const context = target.getContext('2d');
  if (!context || !detections || !explainedImage) return;
  const scale = target.width / explainedImage.width;
  detections.forEach((d, i) => {
    const [x1, y1, x2, y2] = d.box.map((v) => v * scale) as [number, number, number, number];
    context.lineWidth = i === chosen ? 3 : 1;
    context.strokeStyle = i === chosen ? '#e6007e' : '#ffffff';
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (i === chosen) {
      context.font = '13px DejaVu Sans, sans-serif';
      context.fillStyle = '#ffffff';
      context.fillText(labels?.[d.label] ?? `class ${d.label}`, x1 + 2, y1 > 16 ? y1 - 4 : y2 + 14);
    }
  });
}

/** Explains another detection of the last run's image with the same settings. */
function explainDetection(index: number): void {
  if (busy || !last?.detections?.[index]) return;
  detectionSelect.value = String(index);
  run(index);
}

canvas.addEventListener('click', (event) => {
  if (!last?.detections || !explainedImage) return;
  const bounds = canvas.getBoundingClientRect();
  const x = ((event.clientX - bounds.left) / bounds.width) * explainedImage.width;
  const y = ((event.clientY - bounds.top) / bounds.height) * explainedImage.height;
  // The smallest box under the click: nested detections stay reachable.
  let best = -1;
  last.detections.forEach((d, i) => {
    const inside = x >= d.box[0] && x <= d.box[2] && y >= d.box[1] && y <= d.box[3];
    const area = (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
    const bestBox = last?.detections?.[best]?.box;
    if (inside && (!bestBox || area < (bestBox[2] - bestBox[0]) * (bestBox[3] - bestBox[1]))) best = i;
  });
  if (best >= 0) explainDetection(best);
});
detectionSelect.addEventListener('change', () => explainDetection(Number(detectionSelect.value)));

/** Decodes a picture file to RGB bytes; a file the browser cannot decode is one line in the status. */
async function readPicture(file: Blob, name: string): Promise<void> {
  let bitmap: ImageBitmap;
  clearResults();
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    image = undefined;
    setBusy(busy);
    throw new Error(`cannot decode ${name}: it is not a JPEG, PNG or WebP image the browser can read`);
  }
  const surface = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = surface.getContext('2d') as OffscreenCanvasRenderingContext2D;
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height, { colorSpace: 'srgb' }).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let p = 0; p < bitmap.width * bitmap.height; p++) rgb.set(rgba.subarray(4 * p, 4 * p + 3), 3 * p);
  image = { data: rgb, width: bitmap.width, height: bitmap.height, name };
  setBusy(busy);
  setStatus(`${name}: ${bitmap.width} x ${bitmap.height}, ready to explain`);
}

async function pick(file: File | undefined): Promise<void> {
  if (!file) return;
  try {
    await readPicture(file, file.name);
  } catch (error) {
    setStatus((error as Error).message, true);
  }
}

$<HTMLInputElement>('image-input').addEventListener('change', (e) => void pick((e.target as HTMLInputElement).files?.[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  void pick(e.dataTransfer?.files[0]);
});
$<HTMLSelectElement>('photo-select').addEventListener('change', async (e) => {
  const path = (e.target as HTMLSelectElement).value;
  if (!path) return;
  try {
    const response = await fetch(path);
    await readPicture(await response.blob(), path.split('/').pop() as string);
  } catch (error) {
    setStatus((error as Error).message, true);
  }
});
const bundledUrl = (name: string) => new URL(BUNDLED[name] as string, document.baseURI).href;
modelSelect.addEventListener('change', () => loadModel({ name: modelSelect.value, url: bundledUrl(modelSelect.value) }));
$<HTMLInputElement>('model-file').addEventListener('change', async (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (!file) return;
  const bytes = await file.arrayBuffer();
  loadModel({ name: file.name, bytes }, [bytes]);
});
$<HTMLInputElement>('model-url').addEventListener('change', (e) => {
  const url = (e.target as HTMLInputElement).value.trim();
  if (url) loadModel({ name: url, url });
});
$<HTMLInputElement>('class-search').addEventListener('change', (e) => {
  const index = labels?.indexOf((e.target as HTMLInputElement).value) ?? -1;
  if (index >= 0) {
    if (![...classSelect.options].some((o) => o.value === String(index))) classSelect.append(new Option(labelOf(index), String(index)));
    classSelect.value = String(index);
  }
});
for (const control of [colormapSelect, opacityInput]) control.addEventListener('input', draw);
$('download').addEventListener('click', () =>
  canvas.toBlob((blob) => {
    if (!blob) return;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `cameras-${image?.name.replace(/\.[^.]*$/, '') ?? 'map'}.png`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }, 'image/png'),
);

$<HTMLFormElement>('controls').addEventListener('submit', (e) => {
  e.preventDefault();
  run();
});

/** One run of the chosen methods on the chosen image; on a detector, of its detection `detection` (default the best). */
function run(detection?: number): unknown {
  if (busy) return;
  if (!image) return setStatus('choose or drop an image first', true);
  const methods = [...methodSelect.selectedOptions].map((o) => o.value);
  if (methods.length === 0) return setStatus('choose at least one method', true);
  const resolutions = resolutionsInput.value.split(',').map((v) => Number(v.trim()));
  if (resolutions.some((r) => !Number.isInteger(r) || r < 16))
    return setStatus('resolutions: whole numbers of pixels, e.g. 224,324,424', true);
  let target: Target = targetSelect.value === 'prob' ? 'prob' : 'logit';
  if (targetSelect.value === 'contrast') target = { contrast: Number(contrastSelect.value) };
  explainedPhoto = forDisplay(image);
  explainedImage = image;
  setBusy(true);
  setStatus('Explaining…');
  progress.value = 0;
  send({
    type: 'explain',
    image: { data: image.data, width: image.width, height: image.height },
    methods,
    classIndex: classSelect.value === '' ? null : Number(classSelect.value),
    target,
    resolutions,
    ...(detection !== undefined ? { detection } : {}),
  });
}

clearResults();
loadModel({ name: modelSelect.value, url: bundledUrl(modelSelect.value) });
