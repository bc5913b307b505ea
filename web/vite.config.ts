import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const out = resolve(root, 'dist/web');

/** Cross-origin isolation, so ONNX Runtime Web may use wasm threads (SharedArrayBuffer). */
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: here,
  base: './',
  build: { outDir: out, emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
  worker: { format: 'es' },
  server: { headers: ISOLATION },
  preview: { headers: ISOLATION },
  plugins: [
    {
      name: 'cameras-static',
      // The bundled photos go beside the page; the models are served by `cameras serve` from the package's
      // assets/models (not copied: up to 85 MB each). ONNX Runtime Web's wasm file is emitted by the bundler.
      closeBundle() {
        mkdirSync(resolve(out, 'photos'), { recursive: true });
        copyFileSync(resolve(root, 'assets/images/cat_dog.png'), resolve(out, 'photos/cat_dog.png'));
        copyFileSync(resolve(root, 'assets/images/composite_scene.jpg'), resolve(out, 'photos/composite_scene.jpg'));
      },
    },
  ],
});
