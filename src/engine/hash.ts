/**
 * xxHash64 through xxhash-wasm, initialised once. Content hashes are for local change
 * detection only (fast, not collision resistant against an adversary).
 */
import {createRequire} from 'node:module';
import type {XXHashAPI} from 'xxhash-wasm';

let api: XXHashAPI | undefined;
let loading: Promise<XXHashAPI> | undefined;

export async function initHash(): Promise<XXHashAPI> {
  if (api !== undefined) return api;
  // Its CommonJS build, through require: a CommonJS entry (see bin/psy.js) need not start
  // Node's ES module loader for it.
  loading ??= (async () => {
    const m = createRequire(import.meta.url)('xxhash-wasm') as {default: () => Promise<XXHashAPI>} | (() => Promise<XXHashAPI>);
    api = await (typeof m === 'function' ? m() : m.default());
    return api;
  })();
  return loading;
}

function ready(): XXHashAPI {
  if (api === undefined) throw new Error('initHash() must be awaited before hashing');
  return api;
}

/** 16 hex digits. */
export function hashBytes(data: Uint8Array): string {
  return ready().h64Raw(data).toString(16).padStart(16, '0');
}

export function hashString(text: string): string {
  return ready().h64(text).toString(16).padStart(16, '0');
}

/** Checksum for state-log records. */
export function checksum32(data: Uint8Array): number {
  return ready().h32Raw(data) >>> 0;
}

/** Incremental hasher over strings and bytes. */
export interface Hasher {
  update(part: string | Uint8Array): Hasher;
  digest(): string;
}

export function createHasher(): Hasher {
  const h = ready().create64();
  const self: Hasher = {
    update(part) {
      h.update(part);
      return self;
    },
    digest() {
      return h.digest().toString(16).padStart(16, '0');
    },
  };
  return self;
}
