import type { GuestMemory, GuestMemoryRegion } from '../memory/guest-memory.js';
import { ChainFault } from './fault.js';

const MAX_CHAIN_BYTES = 0xffffffff;
const INITIAL_SEGMENTS = 4;

/** Thrown by a chain reader or writer asked to go past the end of its part of the chain. */
export class ChainUnderrunError extends RangeError {
  /** Creates the error: `wanted` bytes were asked for, `remaining` were left. */
  constructor(wanted: number, remaining: number, part: 'readable' | 'writable') {
    super(`${wanted} bytes requested but only ${remaining} remain in the ${part} part of the chain`);
    this.name = 'ChainUnderrunError';
  }
}

/**
 * A descriptor chain popped from a virtqueue, validated once at pop time: every
 * buffer is inside guest memory, readable buffers come first, totals fit in 32
 * bits, and the walk was bounded. The buffer ranges are copied out of the ring at
 * validation, so a guest rewriting its descriptors afterwards cannot redirect the
 * device (no time-of-check/time-of-use gap).
 *
 * Chains are pooled by their queue: after `addUsed` the object is recycled and
 * must not be used again.
 */
export interface DescriptorChain {
  /** The id the device reports back: the head index (split) or the buffer ID (packed). */
  readonly id: number;
  /** {@link ChainFault.NONE} for a valid chain; otherwise why it was refused (its buffers are empty). */
  readonly fault: ChainFault;
  /** Total bytes of the device-readable part. */
  readonly readableLength: number;
  /** Total bytes of the device-writable part. */
  readonly writableLength: number;
  /** Buffer descriptors walked, direct or in an indirect table (up to the one that faulted). */
  readonly descriptorCount: number;
  /** Cursor over the device-readable part. */
  readonly reader: ChainReader;
  /** Cursor over the device-writable part. */
  readonly writer: ChainWriter;
}

/** Largest high word of a 64-bit guest address that keeps the address below 2^53 (exact in a number). */
const MAX_ADDR_HI = 0x1fffff;
const TWO_32 = 4294967296;

/**
 * The guest-physical address a descriptor's two 32-bit address words name, or
 * -1 when it is 2^53 or more (beyond any guest memory a number can address).
 */
export function descriptorAddress(lo: number, hi: number): number {
  return hi > MAX_ADDR_HI ? -1 : hi * TWO_32 + lo;
}

/**
 * The pooled implementation of {@link DescriptorChain}. Buffers are stored as
 * segments (region index, offset in region, length), split at region edges, in
 * typed arrays that grow to the longest chain seen and are then reused.
 * @internal
 */
export class Chain implements DescriptorChain {
  id = 0;
  fault: ChainFault = ChainFault.NONE;
  readableLength = 0;
  writableLength = 0;
  descriptorCount = 0;
  /** Packed ring: descriptor slots the chain occupied. */
  ringSlots = 1;
  /** Order in which the chain was popped, for in-order completion. */
  seq = 0;
  /** True between pop and addUsed. */
  inFlight = false;
  /** The queue whose pool the chain belongs to. */
  readonly owner: object;
  readonly reader: ChainReader;
  readonly writer: ChainWriter;
  readonly memory: GuestMemory;
  readonly regions: readonly GuestMemoryRegion[];
  segRegion = new Uint16Array(INITIAL_SEGMENTS);
  segOffset = new Float64Array(INITIAL_SEGMENTS);
  segLen = new Uint32Array(INITIAL_SEGMENTS);
  segCount = 0;
  readableCount = 0;
  private sawWritable = false;
  /*
   * The region the last buffer fell in, as plain numbers: nearly every buffer
   * lands in the same region as the one before, and comparing two numbers is
   * much cheaper than a lookup through GuestMemory.
   */
  private hitIndex = 0;
  private hitStart = 0;
  private hitEnd = 0;
  private hitWritable = false;

  constructor(owner: object, memory: GuestMemory) {
    this.owner = owner;
    this.memory = memory;
    this.regions = memory.regions;
    this.reader = new ChainReader(this);
    this.writer = new ChainWriter(this);
  }

  /** Clears the chain for a new pop. */
  begin(id: number): void {
    this.id = id;
    this.fault = ChainFault.NONE;
    this.readableLength = 0;
    this.writableLength = 0;
    this.descriptorCount = 0;
    this.ringSlots = 1;
    this.segCount = 0;
    this.readableCount = 0;
    this.sawWritable = false;
  }

  /**
   * Adds one descriptor's buffer, given as the descriptor's address words, length
   * and write flag; returns the fault it causes, if any. Readable buffers must come
   * first (spec 2.7.4.2, 2.8.17) and the chain may not total more than 2^32 - 1
   * bytes (spec 2.7.5.2).
   */
  addBuffer(lo: number, hi: number, len: number, writable: boolean): ChainFault {
    this.descriptorCount++;
    const total = this.readableLength + this.writableLength + len;
    if (total > MAX_CHAIN_BYTES) return ChainFault.LENGTH_OVERFLOW;
    if (writable) {
      this.sawWritable = true;
      this.writableLength += len;
    } else {
      if (this.sawWritable) return ChainFault.READABLE_AFTER_WRITABLE;
      this.readableLength += len;
    }
    if (len === 0) return ChainFault.NONE;
    if (hi > MAX_ADDR_HI) return ChainFault.BUFFER_OUTSIDE_MEMORY;
    // Exact: addr < 2^53 and len < 2^32, and a sum that rounds is above every region's end.
    const addr = hi * TWO_32 + lo;
    if (addr >= this.hitStart && addr + len <= this.hitEnd && (this.hitWritable || !writable)) {
      this.pushSegment(this.hitIndex, addr - this.hitStart, len, writable);
      return ChainFault.NONE;
    }
    return this.addBufferSlow(addr, len, writable);
  }

  /** Marks the chain faulted and drops whatever buffers it had gathered. */
  refuse(fault: ChainFault): void {
    this.fault = fault;
    this.segCount = 0;
    this.readableCount = 0;
    this.readableLength = 0;
    this.writableLength = 0;
  }

  /** Resets both cursors to the start of their parts; called once the chain is complete. */
  rewind(): void {
    this.reader.reset(0, this.readableCount, this.readableLength);
    this.writer.reset(this.readableCount, this.segCount, this.writableLength);
  }

  /** A buffer outside the cached region: look it up, and split it where it crosses into an adjacent region. */
  private addBufferSlow(addr: number, len: number, writable: boolean): ChainFault {
    const memory = this.memory;
    const access = writable ? 'write' : 'read';
    const index = memory.regionIndexOf(addr, len, access);
    if (index >= 0) {
      const region = this.regions[index] as GuestMemoryRegion;
      this.hitIndex = index;
      this.hitStart = region.guestAddress;
      this.hitEnd = region.end;
      this.hitWritable = !region.readonly;
      this.pushSegment(index, addr - region.guestAddress, len, writable);
      return ChainFault.NONE;
    }
    if (!memory.checkRange(addr, len, access)) return ChainFault.BUFFER_OUTSIDE_MEMORY;
    let cursor = addr;
    const end = addr + len;
    while (cursor < end) {
      const region = memory.regionAt(cursor) as GuestMemoryRegion;
      const stop = Math.min(end, region.end);
      this.pushSegment(this.regions.indexOf(region), cursor - region.guestAddress, stop - cursor, writable);
      cursor = stop;
    }
    return ChainFault.NONE;
  }

  private pushSegment(region: number, offset: number, len: number, writable: boolean): void {
    const n = this.segCount;
    if (n === this.segLen.length) this.grow();
    this.segRegion[n] = region;
    this.segOffset[n] = offset;
    this.segLen[n] = len;
    this.segCount = n + 1;
    if (!writable) this.readableCount = n + 1;
  }

  private grow(): void {
    const capacity = this.segLen.length * 2;
    const region = new Uint16Array(capacity);
    region.set(this.segRegion);
    const offset = new Float64Array(capacity);
    offset.set(this.segOffset);
    const len = new Uint32Array(capacity);
    len.set(this.segLen);
    this.segRegion = region;
    this.segOffset = offset;
    this.segLen = len;
  }
}

/** Shared cursor logic over a run of a chain's segments. */
abstract class ChainCursor {
  /** Bytes consumed so far. */
  position = 0;
  /** Total bytes in this part of the chain. */
  length = 0;
  protected seg = 0;
  protected segPos = 0;
  protected end = 0;
  protected readonly chain: Chain;
  protected readonly scratch = new DataView(new ArrayBuffer(8));

  /** @internal */
  constructor(chain: Chain) {
    this.chain = chain;
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.length - this.position;
  }

  /** @internal */
  reset(first: number, end: number, length: number): void {
    this.seg = first;
    this.segPos = 0;
    this.end = end;
    this.position = 0;
    this.length = length;
  }

  /** Moves the cursor `n` bytes forward without touching them. */
  skip(n: number): void {
    this.need(n);
    this.advance(n);
  }

  /**
   * Zero-copy views of the next `len` bytes (all that remain by default), one per
   * segment crossed, and moves past them.
   */
  slices(len: number = this.remaining): Uint8Array[] {
    this.need(len);
    const out: Uint8Array[] = [];
    let left = len;
    const c = this.chain;
    while (left > 0) {
      const seg = this.seg;
      const take = Math.min(left, (c.segLen[seg] as number) - this.segPos);
      const region = c.regions[c.segRegion[seg] as number] as GuestMemoryRegion;
      const start = (c.segOffset[seg] as number) + this.segPos;
      out.push(region.bytes.subarray(start, start + take));
      this.advance(take);
      left -= take;
    }
    return out;
  }

  protected abstract part(): 'readable' | 'writable';

  protected need(n: number): void {
    if (!(n >= 0 && n <= this.length - this.position)) {
      throw new ChainUnderrunError(n, this.length - this.position, this.part());
    }
  }

  /** The region view and byte offset of the cursor if `n` bytes fit in the current segment, else undefined. */
  protected contiguous(n: number): DataView | undefined {
    const c = this.chain;
    const seg = this.seg;
    if (seg < this.end && this.segPos + n <= (c.segLen[seg] as number)) {
      return (c.regions[c.segRegion[seg] as number] as GuestMemoryRegion).view;
    }
    return undefined;
  }

  protected offset(): number {
    return (this.chain.segOffset[this.seg] as number) + this.segPos;
  }

  protected advance(n: number): void {
    const c = this.chain;
    this.position += n;
    let pos = this.segPos + n;
    let seg = this.seg;
    while (seg < this.end && pos >= (c.segLen[seg] as number)) {
      pos -= c.segLen[seg] as number;
      seg++;
    }
    this.seg = seg;
    this.segPos = pos;
  }

  /** Moves `n` bytes between the chain and `scratch` (for values that straddle segments). */
  protected copyScratch(n: number, toChain: boolean): DataView {
    const bytes = new Uint8Array(this.scratch.buffer, 0, n);
    let done = 0;
    const c = this.chain;
    while (done < n) {
      const seg = this.seg;
      const take = Math.min(n - done, (c.segLen[seg] as number) - this.segPos);
      const region = c.regions[c.segRegion[seg] as number] as GuestMemoryRegion;
      const start = (c.segOffset[seg] as number) + this.segPos;
      if (toChain) region.bytes.set(bytes.subarray(done, done + take), start);
      else bytes.set(region.bytes.subarray(start, start + take), done);
      this.advance(take);
      done += take;
    }
    return this.scratch;
  }
}

/** Reads the device-readable part of a chain, front to back. */
export class ChainReader extends ChainCursor {
  /** Copies up to `dst.length` bytes into `dst`; returns how many were copied. */
  read(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.remaining);
    let done = 0;
    const c = this.chain;
    while (done < n) {
      const seg = this.seg;
      const take = Math.min(n - done, (c.segLen[seg] as number) - this.segPos);
      const region = c.regions[c.segRegion[seg] as number] as GuestMemoryRegion;
      const start = (c.segOffset[seg] as number) + this.segPos;
      dst.set(region.bytes.subarray(start, start + take), done);
      this.advance(take);
      done += take;
    }
    return n;
  }

  /** Reads a byte. Throws {@link ChainUnderrunError} past the end. */
  readU8(): number {
    this.need(1);
    const view = this.contiguous(1) as DataView;
    const v = view.getUint8(this.offset());
    this.advance(1);
    return v;
  }

  /** Reads a little-endian u16. Throws {@link ChainUnderrunError} past the end. */
  readU16(): number {
    this.need(2);
    const view = this.contiguous(2);
    if (view === undefined) return this.copyScratch(2, false).getUint16(0, true);
    const v = view.getUint16(this.offset(), true);
    this.advance(2);
    return v;
  }

  /** Reads a little-endian u32. Throws {@link ChainUnderrunError} past the end. */
  readU32(): number {
    this.need(4);
    const view = this.contiguous(4);
    if (view === undefined) return this.copyScratch(4, false).getUint32(0, true);
    const v = view.getUint32(this.offset(), true);
    this.advance(4);
    return v;
  }

  /** Reads a little-endian u64. Throws {@link ChainUnderrunError} past the end. */
  readU64(): bigint {
    this.need(8);
    const view = this.contiguous(8);
    if (view === undefined) return this.copyScratch(8, false).getBigUint64(0, true);
    const v = view.getBigUint64(this.offset(), true);
    this.advance(8);
    return v;
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
    const n = Math.min(src.length, this.remaining);
    let done = 0;
    const c = this.chain;
    while (done < n) {
      const seg = this.seg;
      const take = Math.min(n - done, (c.segLen[seg] as number) - this.segPos);
      const region = c.regions[c.segRegion[seg] as number] as GuestMemoryRegion;
      region.bytes.set(src.subarray(done, done + take), (c.segOffset[seg] as number) + this.segPos);
      this.advance(take);
      done += take;
    }
    return n;
  }

  /** Writes `n` copies of `value` (zero by default). Throws {@link ChainUnderrunError} past the end. */
  fill(n: number, value = 0): void {
    for (const part of this.slices(n)) part.fill(value);
  }

  /** Writes a byte. Throws {@link ChainUnderrunError} past the end. */
  writeU8(value: number): void {
    this.need(1);
    (this.contiguous(1) as DataView).setUint8(this.offset(), value);
    this.advance(1);
  }

  /** Writes a little-endian u16. Throws {@link ChainUnderrunError} past the end. */
  writeU16(value: number): void {
    this.need(2);
    const view = this.contiguous(2);
    if (view === undefined) {
      this.scratch.setUint16(0, value, true);
      this.copyScratch(2, true);
      return;
    }
    view.setUint16(this.offset(), value, true);
    this.advance(2);
  }

  /** Writes a little-endian u32. Throws {@link ChainUnderrunError} past the end. */
  writeU32(value: number): void {
    this.need(4);
    const view = this.contiguous(4);
    if (view === undefined) {
      this.scratch.setUint32(0, value, true);
      this.copyScratch(4, true);
      return;
    }
    view.setUint32(this.offset(), value, true);
    this.advance(4);
  }

  /** Writes a little-endian u64. Throws {@link ChainUnderrunError} past the end. */
  writeU64(value: bigint): void {
    this.need(8);
    const view = this.contiguous(8);
    if (view === undefined) {
      this.scratch.setBigUint64(0, value, true);
      this.copyScratch(8, true);
      return;
    }
    view.setBigUint64(this.offset(), value, true);
    this.advance(8);
  }

  protected part(): 'writable' {
    return 'writable';
  }
}
