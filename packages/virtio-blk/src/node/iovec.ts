/**
 * struct iovec and other 64-bit words for system calls made through koffi,
 * written into Uint32Arrays without BigInt allocations. Only 64-bit hosts
 * use them (the callers check the pointer size).
 */

/** The host stores the low half of a 64-bit word first. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const LOW = LITTLE_ENDIAN ? 0 : 1;

/** Stores `value` (a non-negative safe integer) as the 64-bit word at 32-bit index `at`. */
export function setWord64(words: Uint32Array, at: number, value: number): void {
  words[at + LOW] = value % 0x100000000;
  words[at + 1 - LOW] = Math.floor(value / 0x100000000);
}

/** The signed 64-bit word at 32-bit index `at`, as a number (exact for the byte counts and errnos it carries). */
export function getWord64(words: Uint32Array, at: number): number {
  return ((words[at + 1 - LOW] as number) | 0) * 0x100000000 + (words[at + LOW] as number);
}

/**
 * Host addresses of guest-memory views. Each ArrayBuffer's base is looked up
 * once: the backing store of a guest-memory buffer never moves.
 */
export class HostAddresses {
  private readonly bases = new WeakMap<ArrayBufferLike, number>();
  private readonly addressOf: (view: Uint8Array) => number;

  /** `addressOf` gives the host address of a view's first byte (koffi.address). */
  constructor(addressOf: (view: Uint8Array) => number) {
    this.addressOf = addressOf;
  }

  /** The host address of `view`'s first byte. */
  of(view: Uint8Array): number {
    let base = this.bases.get(view.buffer);
    if (base === undefined) {
      base = this.addressOf(view) - view.byteOffset;
      this.bases.set(view.buffer, base);
    }
    return base + view.byteOffset;
  }

  /** Writes the struct iovec entries describing `buffers` at 32-bit index `at` (4 words each). */
  writeIovecs(words: Uint32Array, at: number, buffers: readonly Uint8Array[]): void {
    for (let i = 0; i < buffers.length; i++) {
      const view = buffers[i] as Uint8Array;
      setWord64(words, at + 4 * i, this.of(view));
      setWord64(words, at + 4 * i + 2, view.length);
    }
  }
}

/** The part of `buffers` after the first `n` bytes (views, not copies). */
export function skipBytes(buffers: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = n;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
