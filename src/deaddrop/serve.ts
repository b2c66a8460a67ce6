import {createReadStream} from 'node:fs';
import {lstat, readlink, realpath} from 'node:fs/promises';
import {createServer, type Server} from 'node:http';
import {join, posix, relative, resolve, sep} from 'node:path';
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
      const found = key === '' || key.startsWith('..') || hasPrivatePart(key) ? undefined : await locate(root, key);
      if (found === undefined) {
        // Nothing about why, and the path as received (percent-encoded, so one line):
        // a refused path and a missing one look the same.
        res.writeHead(404).end();
        opts.log?.(`${method} ${url.pathname} -> 404`);
        return;
      }
      if (found.redirect !== undefined) {
        res.writeHead(301, {location: `/${found.redirect}`, 'content-length': '0'}).end();
        opts.log?.(`${method} ${url.pathname} -> 301 /${found.redirect}`);
        return;
      }
      const abs = found.file;
      const size = found.size;
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
      opts.log?.(`${method} ${url.pathname} -> ${status}`);
      if (method === 'HEAD' || size === 0) {
        res.end();
        return;
      }
      createReadStream(abs, {start, end})
        .on('error', () => res.destroy())
        .pipe(res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(404);
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

function hasPrivatePart(rel: string): boolean {
  return rel.split('/').some((p) => p === '..' || p.startsWith(PRIVATE_PREFIX));
}

/** `real` as a replica key ('/'-separated), or undefined when it is outside the root or private. */
function replicaKey(root: string, real: string): string | undefined {
  const rel = relative(root, real);
  if (rel === '' || rel.startsWith('..') || posix.isAbsolute(rel)) return undefined;
  const key = rel.split(sep).join('/');
  return hasPrivatePart(key) ? undefined : key;
}

/**
 * What a request key names, with every symlink on the way resolved: the parent folder
 * by its real path (a symlinked folder anywhere in the key must stay in the replica and
 * out of private folders), then the last component: a regular file, or a symlink,
 * answered with a redirect to its target when that is a file inside the replica.
 */
async function locate(root: string, key: string): Promise<{file: string; size: number; redirect?: undefined} | {redirect: string} | undefined> {
  const slash = key.lastIndexOf('/');
  const parent = slash < 0 ? root : await realpath(join(root, ...key.slice(0, slash).split('/'))).catch(() => undefined);
  if (parent === undefined || (parent !== root && replicaKey(root, parent) === undefined)) return undefined;
  const abs = join(parent, key.slice(slash + 1));
  const st = await lstat(abs).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    const named = replicaKey(root, resolve(parent, await readlink(abs)));
    const real = await realpath(abs).catch(() => undefined);
    if (named === undefined || real === undefined || replicaKey(root, real) === undefined) return undefined;
    if (!(await lstat(real)).isFile()) return undefined;
    return {redirect: named};
  }
  return st?.isFile() ? {file: abs, size: st.size} : undefined;
}
