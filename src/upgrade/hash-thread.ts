import {Worker} from 'node:worker_threads';
import type {IncrementalHash} from '../sign/signature.js';

// A worker given as source text: it runs the same from compiled and from TypeScript sources.
// Its first message names the algorithm, so a worker can be started before that is known.
const WORKER = `
const {parentPort} = require('node:worker_threads');
let hash;
parentPort.on('message', (m) => {
  if (hash === undefined) hash = require('node:crypto').createHash(m);
  else if (m === null) {
    parentPort.postMessage(hash.digest());
    parentPort.close();
  } else hash.update(m);
});
`;

let warm: Worker | undefined;

/**
 * Starts a hashing thread now for the next hashOnThread: a thread takes ~40 ms to start,
 * which an apply spends reading the node's state instead of before its first hash. An
 * unused one does not keep the process alive.
 */
export function warmHashThread(): void {
  if (warm !== undefined) return;
  warm = new Worker(WORKER, {eval: true});
  warm.unref();
}

/**
 * A hash computed on another thread, so the signature's BLAKE2b runs beside the
 * unpacking and the members' sha256 instead of after them. Each piece is handed over
 * (moved when it owns its memory, copied otherwise): the caller must not use a piece
 * again after `update`.
 */
export function hashOnThread(algorithm: string): IncrementalHash & {abandon(): void} {
  const worker = warm ?? new Worker(WORKER, {eval: true});
  warm = undefined;
  worker.ref();
  let failed: Error | undefined;
  worker.on('error', (err) => {
    failed = err;
  });
  worker.postMessage(algorithm);
  return {
    update(chunk) {
      const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer;
      if (own) worker.postMessage(chunk, [chunk.buffer as ArrayBuffer]);
      else worker.postMessage(chunk);
    },
    digest() {
      return new Promise<Buffer>((resolve, reject) => {
        if (failed) return reject(failed);
        worker.once('message', (d: Uint8Array) => resolve(Buffer.from(d.buffer, d.byteOffset, d.byteLength)));
        worker.once('error', reject);
        worker.postMessage(null);
      });
    },
    abandon() {
      void worker.terminate();
    },
  };
}
