import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import { CamerasError } from '../errors.js';

export interface DownloadOptions {
  quiet?: boolean;
  /** Throws (a CamerasError) when the bytes are not what was asked for: such bytes never enter the cache. */
  validate?: (bytes: Uint8Array, source: string) => void;
  /** The file's SHA-256 in hex, where it is known. */
  sha256?: string;
  /** No answer, or no data, for this long aborts (default 60 s, or $CAMERAS_DOWNLOAD_TIMEOUT_MS). */
  timeoutMs?: number;
}

/**
 * A model by URL: downloaded once into `folder` (named by the URL's hash, written whole then renamed), with a
 * progress bar on a terminal; later calls read the file. Nothing enters the cache unchecked: the size against
 * Content-Length, the checksum where known, and `validate` (parsing it). A cached file that no longer validates
 * is removed and fetched again. Failures are one line naming the URL (and the cache file where it matters).
 */
export async function downloadOnce(url: string, folder: string, options: DownloadOptions = {}): Promise<Uint8Array> {
  const name = `${createHash('sha256').update(url).digest('hex').slice(0, 16)}-${
    url
      .split('/')
      .pop()
      ?.replace(/[^a-z0-9_.-]/gi, '_') || 'model'
  }`;
  const file = join(folder, name);
  let corrupt = '';
  const cached = await readFile(file).catch(() => undefined);
  if (cached) {
    try {
      check(new Uint8Array(cached), file, options);
      return new Uint8Array(cached);
    } catch (error) {
      await rm(file, { force: true });
      corrupt = `; the cached copy ${file} was corrupt (${(error as Error).message.slice(0, 80)}) and was removed`;
    }
  }
  const bytes = await fetchWhole(url, options, corrupt);
  try {
    check(bytes, url, options);
  } catch (error) {
    throw new CamerasError(`the download of ${url} is not a usable model: ${(error as Error).message}; check the address${corrupt}`);
  }
  const partial = `${file}.partial-${process.pid}`;
  try {
    await mkdir(folder, { recursive: true });
    await writeFile(partial, bytes);
    await rename(partial, file);
  } catch {
    // An unwritable cache only costs a download next time.
    await rm(partial, { force: true });
  }
  return bytes;
}

function check(bytes: Uint8Array, source: string, options: DownloadOptions): void {
  if (options.sha256) {
    const sum = createHash('sha256').update(bytes).digest('hex');
    if (sum !== options.sha256.toLowerCase())
      throw new CamerasError(`${source} has SHA-256 ${sum.slice(0, 16)}..., not the expected ${options.sha256.slice(0, 16)}...`);
  }
  options.validate?.(bytes, source);
}

/** The whole body of a GET, or one line saying why not: refused, HTTP error, no answer, stalled, cut short. */
async function fetchWhole(url: string, options: DownloadOptions, corrupt: string): Promise<Uint8Array> {
  const timeoutMs = options.timeoutMs ?? (Number(process.env.CAMERAS_DOWNLOAD_TIMEOUT_MS) || 60_000);
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), timeoutMs);
  // The clock restarts with every chunk: a slow transfer is fine, one that stops is not.
  const restart = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), timeoutMs);
  };
  const seconds = `${Math.round(timeoutMs / 100) / 10} s`;
  let response: Response;
  try {
    response = await fetch(url, { signal: controller.signal });
  } catch (error) {
    clearTimeout(timer);
    if (controller.signal.aborted)
      throw new CamerasError(
        `cannot download ${url}: no answer in ${seconds}; try again later, or download it yourself and pass the file${corrupt}`,
      );
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new CamerasError(
      `cannot download ${url} (${cause}); check the address and the network, or download it yourself and pass the file${corrupt}`,
    );
  }
  if (!response.ok || !response.body) {
    clearTimeout(timer);
    throw new CamerasError(
      `cannot download ${url} (HTTP ${response.status}); check the address, or download it yourself and pass the file${corrupt}`,
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
      restart();
      chunks.push(chunk);
      received += chunk.length;
      bar?.update(received);
    }
  } catch (error) {
    if (controller.signal.aborted)
      throw new CamerasError(`the download of ${url} stalled: no data for ${seconds} after ${received} bytes; try again${corrupt}`);
    throw new CamerasError(`the download of ${url} broke off after ${received} bytes (${(error as Error).message}); try again${corrupt}`);
  } finally {
    clearTimeout(timer);
    bar?.stop();
  }
  if (total > 0 && received !== total)
    throw new CamerasError(`the download of ${url} was cut short: ${received} of ${total} bytes; try again${corrupt}`);
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
