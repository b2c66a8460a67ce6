import {Worker} from 'node:worker_threads';
import type {IncrementalHash} from '../sign/signature.js';

// A worker given as source text: it runs the same from compiled and from TypeScript sources.
const WORKER = `
const {parentPort, workerData} = require('node:worker_threads');
const hash = require('node:crypto').createHash(workerData);
parentPort.on('message', (m) => {
  if (m === null) {
    parentPort.postMessage(hash.digest());
    parentPort.close();
  } else hash.update(m);
});
`;

/**
 * A hash computed on another thread, so the signature's BLAKE2b runs beside the
 * unpacking and the members' sha256 instead of after them. Each piece is handed over
 * (moved when it owns its memory, copied otherwise): the caller must not use a piece
 * again after `update`.
 */
export function hashOnThread(algorithm: string): IncrementalHash & {abandon(): void} {
  const worker = new Worker(WORKER, {eval: true, workerData: algorithm});
  let failed: Error | undefined;
  worker.on('error', (err) => {
    failed = err;
  });
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
