import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import { CamerasError } from '../errors.js';

/**
 * A model by URL: downloaded once into `folder` (named by the URL's hash, written whole then renamed),
 * with a progress bar on a terminal; later calls read the file. Failures are one line naming the URL.
 */
export async function downloadOnce(url: string, folder: string, options: { quiet?: boolean } = {}): Promise<Uint8Array> {
  const name = `${createHash('sha256').update(url).digest('hex').slice(0, 16)}-${
    url
      .split('/')
      .pop()
      ?.replace(/[^a-z0-9_.-]/gi, '_') || 'model'
  }`;
  const file = join(folder, name);
  try {
    return new Uint8Array(await readFile(file));
  } catch {
    // not downloaded yet
  }
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new CamerasError(
      `cannot download ${url} (${cause}); check the address and the network, or download it yourself and pass the file`,
    );
  }
  if (!response.ok || !response.body) {
    throw new CamerasError(
      `cannot download ${url} (HTTP ${response.status}); check the address, or download it yourself and pass the file`,
    );
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const bar =
    !options.quiet && process.stderr.isTTY && total > 0
      ? new SingleBar({ format: `downloading {bar} {percentage}% | ${url}`, hideCursor: true })
      : undefined;
  bar?.start(total, 0);
  const chunks: Uint8Array[] = [];
  let received = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(chunk);
      received += chunk.length;
      bar?.update(received);
    }
  } catch (error) {
    throw new CamerasError(`the download of ${url} broke off (${(error as Error).message}); try again`);
  } finally {
    bar?.stop();
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  const partial = `${file}.partial-${process.pid}`;
  try {
    await mkdir(folder, { recursive: true });
    await writeFile(partial, bytes);
    await rename(partial, file);
  } catch {
    await rm(partial, { force: true });
  }
  return bytes;
}
