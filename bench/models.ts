import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildResnet, type ResnetName, randomResnetWeights } from '../src/models/resnet.js';

/** bench/ in the repository (this file runs from dist/bench). */
export const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '../../bench');
export const MODELS = resolve(BENCH, 'models');

/** A torchvision ResNet with seeded random weights as ONNX, built once and cached in bench/models. */
export function ensureModel(name: ResnetName): string {
  const path = resolve(MODELS, `${name}.onnx`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, buildResnet(randomResnetWeights(name, 0)));
  }
  return path;
}
