import {createReadStream} from 'node:fs';
import {lstat, readlink, realpath, stat} from 'node:fs/promises';
import {createServer, type Server} from 'node:http';
import {dirname, join, posix, relative, resolve, sep} from 'node:path';
import {PRIVATE_PREFIX} from './layout.js';

export interface ServeOptions {
  readonly root: string;
  readonly host: string;
  readonly port: number;
  readonly log?: (line: string) => void;
}

export interface RunningServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the replica read-only over HTTP, as the bucket's website endpoint would: files
 * as themselves, symlinks (latest) as 301 redirects to what they name, so a node's
 * update client needs nothing else. Never serves psy's private files or leaves the root.
 */
export async function serveReplica(opts: ServeOptions): Promise<RunningServer> {
  const root = await realpath(opts.root);
  const server = createServer((req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      if (method !== 'GET' && method !== 'HEAD') {
        res.writeHead(405, {allow: 'GET, HEAD'}).end();
        return;
      }
      const url = new URL(req.url ?? '/', 'http://x');
      let path: string;
      try {
        path = decodeURIComponent(url.pathname);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const key = posix.normalize(path).replace(/^\/+/, '');
      if (key === '' || key.startsWith('..') || key.split('/').some((p) => p.startsWith(PRIVATE_PREFIX) || p === '..')) {
        res.writeHead(404).end();
        return;
      }
      const abs = join(root, ...key.split('/'));
      const st = await lstat(abs).catch(() => undefined);
      if (st?.isSymbolicLink()) {
        const target = resolve(dirname(abs), await readlink(abs));
        const rel = relative(root, target);
        const real = await realpath(target).catch(() => undefined);
        if (rel.startsWith('..') || real === undefined || relative(root, real).startsWith('..')) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(301, {location: `/${rel.split(sep).join('/')}`, 'content-length': '0'}).end();
        opts.log?.(`${method} /${key} -> 301 /${rel}`);
        return;
      }
      if (!st?.isFile()) {
        res.writeHead(404).end();
        return;
      }
      const size = (await stat(abs)).size;
      const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
      let start = 0;
      let end = size - 1;
      let status = 200;
      if (range && (range[1] !== '' || range[2] !== '')) {
        if (range[1] === '') start = Math.max(0, size - Number(range[2]));
        else {
          start = Number(range[1]);
          if (range[2] !== '') end = Math.min(end, Number(range[2]));
        }
        if (start > end || start >= size) {
          res.writeHead(416, {'content-range': `bytes */${size}`}).end();
          return;
        }
        status = 206;
      }
      const headers: Record<string, string> = {
        'content-length': String(size === 0 ? 0 : end - start + 1),
        'accept-ranges': 'bytes',
        'content-type': key.endsWith('.minisig') ? 'text/plain; charset=utf-8' : 'application/octet-stream',
      };
      if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
      res.writeHead(status, headers);
      opts.log?.(`${method} /${key} -> ${status}`);
      if (method === 'HEAD' || size === 0) {
        res.end();
        return;
      }
      createReadStream(abs, {start, end}).on('error', () => res.destroy()).pipe(res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((ok, bad) => {
    server.once('error', bad);
    server.listen(opts.port, opts.host, () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    server,
    url: `http://${host}:${port}`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}
