import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CamerasError } from '../errors.js';
import { type FloatArray, formatNpy, parseNpy } from './npy.js';

export async function readNpyFile(path: string): Promise<FloatArray> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    throw new CamerasError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check the path`);
  }
  return parseNpy(bytes, path);
}

/** Writes a file whole or not at all: to a temporary name first, then renamed into place. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  // The process id and a random tag keep concurrent writers of one path (retried jobs, workers) apart.
  const temporary = `${path}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new CamerasError(
      `cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; check that ${dirname(path)} exists and is writable`,
    );
  }
}

export async function writeNpyFile(path: string, array: FloatArray): Promise<void> {
  await writeFileAtomic(path, formatNpy(array));
}
