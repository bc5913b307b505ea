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
import type { FromWorker, MethodResult, ModelSpec, ToWorker } from './protocol.ts';

declare global {
  interface Window {
    /** For tests: the first method's map and classes after each run. */
    camerasLastResult?: { map: number[]; width: number; height: number; classPerResolution?: Record<string, number>; method: string };
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

/** Bundled models: ONNX files the build made, served from models/. */
const BUNDLED: Record<string, string> = {
  'nsfwjs:mobilenet_v2': 'models/nsfwjs_mobilenet_v2.onnx',
  'nsfwjs:inception_v3': 'models/nsfwjs_inception_v3.onnx',
  'composite:fashion': 'models/composite_fashion.onnx',
  'composite:vit': 'models/composite_vit.onnx',
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
    draw();
    const first = message.results[0] as MethodResult;
    window.camerasLastResult = {
      map: Array.from(first.map),
      width: first.width,
      height: first.height,
      classPerResolution: first.classPerResolution,
      method: first.method,
    };
    setStatus(`Done: ${message.results.map((r) => `${r.method} explains ${explained(r)}`).join('; ')}`);
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
      $('main-caption').textContent = caption;
    } else figure(picture, caption, resultsBox);
    for (const s of r.scaleMaps ?? []) figure(heat(s.map, s.width, s.height, photo.width, photo.height), `${s.resolution} px`, scales);
  });
  $('main-figure').hidden = false;
  $('download').hidden = false;
}

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
  });
});

clearResults();
loadModel({ name: modelSelect.value, url: bundledUrl(modelSelect.value) });
