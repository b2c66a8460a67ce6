import {createHash, randomBytes} from 'node:crypto';
import {describe, expect, it} from 'vitest';
import {blake2b, blake2b512Impl, createBlake2b512, type Blake2bImpl} from '../src/sign/blake2b.js';

// RFC 7693 appendix A ("abc") and the empty message, BLAKE2b-512
const ABC = 'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923';
const EMPTY = '786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce';
const IMPLS: Blake2bImpl[] = ['native', 'noble'];

describe('BLAKE2b: node:crypto where the runtime has it, @noble/hashes otherwise', () => {
  it('uses the native hash under Node', () => {
    expect(blake2b512Impl).toBe('native');
  });

  for (const impl of IMPLS) {
    it(`${impl}: gives the RFC 7693 values for "abc" and the empty message`, () => {
      expect(blake2b(Buffer.from('abc'), 64, impl).toString('hex')).toBe(ABC);
      expect(blake2b(new Uint8Array(0), 64, impl).toString('hex')).toBe(EMPTY);
      expect(createBlake2b512(impl).update(Buffer.from('a')).update(Buffer.from('bc')).digest().toString('hex')).toBe(ABC);
    });
  }

  it('both give the same digest for any input, however it is split', () => {
    for (const n of [1, 127, 128, 129, 1000, 70_000]) {
      const data = randomBytes(n);
      const cut = Math.floor(n / 3);
      const [a, b] = IMPLS.map((impl) => createBlake2b512(impl).update(data.subarray(0, cut)).update(data.subarray(cut)).digest().toString('hex'));
      expect(a).toBe(b);
      expect(a).toBe(createHash('blake2b512').update(data).digest('hex'));
    }
  });

  it('computes other lengths (BLAKE2b-256 for "abc", as libsodium does) with either choice', () => {
    for (const impl of IMPLS) {
      expect(blake2b(Buffer.from('abc'), 32, impl).toString('hex')).toBe('bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319');
    }
  });
});
