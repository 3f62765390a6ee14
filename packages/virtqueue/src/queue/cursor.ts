import type { GuestMemoryRegion } from '../memory/guest-memory.js';
import type { Chain } from './chain.js';

/** Copies this short or shorter are done byte by byte: cheaper than creating a subarray view for set(). */
const SHORT_COPY = 16;
const NO_BYTES = new Uint8Array(0);
const NO_VIEW = new DataView(NO_BYTES.buffer);

/** Thrown by a chain reader or writer asked to go past the end of its part of the chain. */
export class ChainUnderrunError extends RangeError {
  /** Creates the error: `wanted` bytes were asked for, `remaining` were left. */
  constructor(wanted: number, remaining: number, part: 'readable' | 'writable') {
    super(`${wanted} bytes requested but only ${remaining} remain in the ${part} part of the chain`);
    this.name = 'ChainUnderrunError';
  }
}

/**
 * Shared cursor logic over a run of a chain's segments. The cursor keeps the
 * current segment's region bytes, its offset there and the bytes left in the
 * segment, so that a read or write inside one segment touches no chain state.
 */
abstract class ChainCursor {
  /** Bytes consumed so far. */
  position = 0;
  /** Total bytes in this part of the chain. */
  length = 0;
  protected readonly chain: Chain;
  /** Index of the current segment in the chain. */
  private seg = 0;
  /** The current segment's region, and the cursor's offset in it. */
  protected bytes: Uint8Array = NO_BYTES;
  protected view: DataView = NO_VIEW;
  protected at = 0;
  /** Bytes left in the current segment; 0 before the first one is entered. */
  protected left = 0;
  /** Stages a value that straddles segments. */
  protected readonly scratch = new DataView(new ArrayBuffer(8));
  private readonly scratchBytes = new Uint8Array(this.scratch.buffer);

  /**
   * Creates a cursor over one part of `chain`; the chain places it with reset().
   * @internal
   */
  constructor(chain: Chain) {
    this.chain = chain;
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.length - this.position;
  }

  /**
   * Points the cursor before segment `first`, for the `length` bytes of this part.
   * @internal
   */
  reset(first: number, length: number): void {
    this.seg = first - 1;
    this.position = 0;
    this.length = length;
    this.left = 0;
  }

  /** Moves the cursor `n` bytes forward without touching them. */
  skip(n: number): void {
    this.need(n);
    for (let rest = n; rest > 0; ) rest -= this.take(rest);
  }

  /**
   * Zero-copy views of the next `len` bytes (all that remain by default), one per
   * segment crossed, and moves past them.
   */
  slices(len: number = this.remaining): Uint8Array[] {
    this.need(len);
    const out: Uint8Array[] = [];
    for (let rest = len; rest > 0; ) {
      const n = this.take(rest);
      out.push(this.bytes.subarray(this.at - n, this.at));
      rest -= n;
    }
    return out;
  }

  protected abstract part(): 'readable' | 'writable';

  /** Throws unless `n` bytes remain. */
  protected need(n: number): void {
    if (!(n >= 0 && n <= this.length - this.position)) throw new ChainUnderrunError(n, this.length - this.position, this.part());
  }

  /**
   * Moves past up to `n` bytes of the current segment (entering the next one if
   * this one is used up) and returns how many; they end at `at`. The caller has
   * checked that at least one byte remains.
   */
  protected take(n: number): number {
    if (this.left === 0) this.enter();
    const k = n < this.left ? n : this.left;
    this.at += k;
    this.left -= k;
    this.position += k;
    return k;
  }

  /** Moves `len` bytes between the chain (from the cursor on) and `other` at `offset`. */
  protected copy(other: Uint8Array, offset: number, len: number, toChain: boolean): void {
    for (let done = 0; done < len; ) {
      const n = this.take(len - done);
      const at = this.at - n;
      const bytes = this.bytes;
      // Same backing buffer: set() copies as if through a temporary, so overlapping ranges stay right.
      if (n <= SHORT_COPY && other.buffer !== bytes.buffer) {
        const o = offset + done;
        if (toChain) for (let i = 0; i < n; i++) bytes[at + i] = other[o + i] as number;
        else for (let i = 0; i < n; i++) other[o + i] = bytes[at + i] as number;
      } else if (toChain) {
        bytes.set(other.subarray(offset + done, offset + done + n), at);
      } else {
        other.set(bytes.subarray(at, at + n), offset + done);
      }
      done += n;
    }
  }

  /**
   * The offset in {@link view} of the next `n` bytes if they lie in one segment
   * (and moves past them), or -1 if they straddle segments. `n` bytes remain.
   */
  protected contiguous(n: number): number {
    if (this.left === 0) this.enter();
    if (this.left < n) return -1;
    const at = this.at;
    this.at = at + n;
    this.left -= n;
    this.position += n;
    return at;
  }

  /** Reads `n` straddling bytes through the scratch view. */
  protected gather(n: number): DataView {
    this.copy(this.scratchBytes, 0, n, false);
    return this.scratch;
  }

  /** Writes the first `n` bytes of the scratch view across segments. */
  protected scatter(n: number): void {
    this.copy(this.scratchBytes, 0, n, true);
  }

  /** Enters the next segment; callers have checked that bytes remain, so there is one. */
  private enter(): void {
    const c = this.chain;
    const i = 3 * ++this.seg;
    const region = c.regions[c.segs[i] as number] as GuestMemoryRegion;
    this.bytes = region.bytes;
    this.view = region.view;
    this.at = c.segs[i + 1] as number;
    this.left = c.segs[i + 2] as number;
  }
}

/** Reads the device-readable part of a chain, front to back. */
export class ChainReader extends ChainCursor {
  /** Copies up to `dst.length` bytes into `dst`; returns how many were copied. */
  read(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.length - this.position);
    this.copy(dst, 0, n, false);
    return n;
  }

  /** Reads a byte. Throws {@link ChainUnderrunError} past the end. */
  readU8(): number {
    this.need(1);
    const at = this.contiguous(1);
    return this.view.getUint8(at);
  }

  /** Reads a little-endian u16. Throws {@link ChainUnderrunError} past the end. */
  readU16(): number {
    this.need(2);
    const at = this.contiguous(2);
    return at < 0 ? this.gather(2).getUint16(0, true) : this.view.getUint16(at, true);
  }

  /** Reads a little-endian u32. Throws {@link ChainUnderrunError} past the end. */
  readU32(): number {
    this.need(4);
    const at = this.contiguous(4);
    return at < 0 ? this.gather(4).getUint32(0, true) : this.view.getUint32(at, true);
  }

  /** Reads a little-endian u64. Throws {@link ChainUnderrunError} past the end. */
  readU64(): bigint {
    this.need(8);
    const at = this.contiguous(8);
    return at < 0 ? this.gather(8).getBigUint64(0, true) : this.view.getBigUint64(at, true);
  }

  protected part(): 'readable' {
    return 'readable';
  }
}

/** Writes the device-writable part of a chain, front to back. */
export class ChainWriter extends ChainCursor {
  /** Bytes written so far: the length to report when completing the chain. */
  get bytesWritten(): number {
    return this.position;
  }

  /** Copies as much of `src` as fits; returns how many bytes were written. */
  write(src: Uint8Array): number {
    const n = Math.min(src.length, this.length - this.position);
    this.copy(src, 0, n, true);
    return n;
  }

  /** Writes `n` copies of `value` (zero by default). Throws {@link ChainUnderrunError} past the end. */
  fill(n: number, value = 0): void {
    this.need(n);
    for (let rest = n; rest > 0; ) {
      const k = this.take(rest);
      this.bytes.fill(value, this.at - k, this.at);
      rest -= k;
    }
  }

  /** Writes a byte. Throws {@link ChainUnderrunError} past the end. */
  writeU8(value: number): void {
    this.need(1);
    const at = this.contiguous(1);
    this.view.setUint8(at, value);
  }

  /** Writes a little-endian u16. Throws {@link ChainUnderrunError} past the end. */
  writeU16(value: number): void {
    this.need(2);
    const at = this.contiguous(2);
    if (at >= 0) this.view.setUint16(at, value, true);
    else {
      this.scratch.setUint16(0, value, true);
      this.scatter(2);
    }
  }

  /** Writes a little-endian u32. Throws {@link ChainUnderrunError} past the end. */
  writeU32(value: number): void {
    this.need(4);
    const at = this.contiguous(4);
    if (at >= 0) this.view.setUint32(at, value, true);
    else {
      this.scratch.setUint32(0, value, true);
      this.scatter(4);
    }
  }

  /** Writes a little-endian u64. Throws {@link ChainUnderrunError} past the end. */
  writeU64(value: bigint): void {
    this.need(8);
    const at = this.contiguous(8);
    if (at >= 0) this.view.setBigUint64(at, value, true);
    else {
      this.scratch.setBigUint64(0, value, true);
      this.scatter(8);
    }
  }

  protected part(): 'writable' {
    return 'writable';
  }
}
