import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CamerasError } from '../errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.json': 'application/json',
};

/** The built page (dist/web) and the bundled models (assets/models), beside this file in the package. */
const WEB = fileURLToPath(new URL('../../web/', import.meta.url));
const MODELS = fileURLToPath(new URL('../../../assets/models/', import.meta.url));

/** A path under `root`, or undefined for one that climbs out of it. */
function within(root: string, path: string): string | undefined {
  const full = normalize(join(root, path));
  return full.startsWith(resolve(root) + sep) || full === resolve(root) ? full : undefined;
}

/**
 * Serves the browser app with the headers it needs: cross-origin isolation (COOP same-origin, COEP require-corp)
 * so ONNX Runtime Web may run wasm threads, and same-origin resources only.
 */
export async function serveApp(port: number, host = '127.0.0.1'): Promise<Server> {
  const index = await stat(join(WEB, 'index.html')).catch(() => undefined);
  if (!index) throw new CamerasError(`the web app is not built (${WEB} has no index.html); run 'npm run build'`);
  const server = createServer((request, response) => {
    void respond(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500, { 'Content-Type': 'text/plain' });
      response.end();
    });
  });
  const respond = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      response.writeHead(400, { 'Content-Type': 'text/plain' }).end('bad request\n');
      return;
    }
    const file = path.startsWith('/models/')
      ? within(MODELS, path.slice('/models/'.length))
      : within(WEB, path === '/' ? 'index.html' : path.slice(1));
    const info = file ? await stat(file).catch(() => undefined) : undefined;
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
    };
    // HEAD is GET without the body (monitors and link checkers ask it); anything else is not allowed.
    const reading = request.method === 'GET' || request.method === 'HEAD';
    if (!reading) {
      response.writeHead(405, { ...headers, Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (!file || !info?.isFile()) {
      response.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    response.writeHead(200, {
      ...headers,
      'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Content-Length': info.size,
      'Cache-Control': 'no-cache',
    });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    // pipeline closes the file when the client goes away and turns a read error into a closed response.
    pipeline(createReadStream(file), response, () => undefined);
  };
  await new Promise<void>((done, fail) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      fail(new CamerasError(`cannot listen on ${host}:${port} (${error.code ?? error.message}); choose another --port`)),
    );
    server.listen(port, host, done);
  });
  return server;
}

export async function serveCommand(flags: { port: number; host: string; quiet?: boolean }): Promise<void> {
  const server = await serveApp(flags.port, flags.host);
  const address = server.address() as { port: number };
  if (!flags.quiet) process.stdout.write(`serving the CAMERAS page on http://${flags.host}:${address.port}/ (Ctrl-C stops)\n`);
  await new Promise<void>((done) => {
    const stop = () => server.close(() => done());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
