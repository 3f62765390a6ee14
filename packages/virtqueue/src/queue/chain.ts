import type { GuestMemory, GuestMemoryRegion } from '../memory/guest-memory.js';
import { ChainReader, ChainWriter } from './cursor.js';
import { ChainFault } from './fault.js';

const MAX_CHAIN_BYTES = 0xffffffff;
const INITIAL_SEGMENTS = 4;
const { NONE, LENGTH_OVERFLOW, READABLE_AFTER_WRITABLE, BUFFER_OUTSIDE_MEMORY } = ChainFault;

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
 * one typed array that grows to the longest chain seen and is then reused.
 * @internal
 */
export class Chain implements DescriptorChain {
  /** @inheritDoc */
  id = 0;
  /** @inheritDoc */
  fault: ChainFault = NONE;
  /** @inheritDoc */
  readableLength = 0;
  /** @inheritDoc */
  writableLength = 0;
  /** @inheritDoc */
  descriptorCount = 0;
  /** Packed ring: descriptor slots the chain occupied. */
  ringSlots = 1;
  /** Order in which the chain was popped, for in-order completion. */
  seq = 0;
  /** True between pop and addUsed. */
  inFlight = false;
  /** The queue whose pool the chain belongs to. */
  readonly owner: object;
  /** @inheritDoc */
  readonly reader: ChainReader;
  /** @inheritDoc */
  readonly writer: ChainWriter;
  /** The guest memory the buffers were validated against. */
  readonly memory: GuestMemory;
  /** `memory.regions`, kept at hand because segments name their region by index into it. */
  readonly regions: readonly GuestMemoryRegion[];
  /** Segment i is [3i] region index, [3i + 1] offset in the region, [3i + 2] length. */
  segs = new Float64Array(3 * INITIAL_SEGMENTS);
  /** Segments in use in `segs`; the array itself keeps the capacity of the longest chain seen. */
  segCount = 0;
  /** Segments before the first device-writable one, once one was seen. */
  private readableCount = 0;
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

  /** Creates an empty chain for the pool of the queue `owner`, over `memory`. */
  constructor(owner: object, memory: GuestMemory) {
    this.owner = owner;
    this.memory = memory;
    this.regions = memory.regions;
    this.reader = new ChainReader(this);
    this.writer = new ChainWriter(this);
  }

  /** Clears the chain for a new pop and marks it in flight. */
  begin(id: number, seq: number): void {
    this.id = id;
    this.seq = seq;
    this.inFlight = true;
    this.fault = NONE;
    this.readableLength = 0;
    this.writableLength = 0;
    this.descriptorCount = 0;
    this.segCount = 0;
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
    if (this.readableLength + this.writableLength + len > MAX_CHAIN_BYTES) return LENGTH_OVERFLOW;
    if (!writable) {
      if (this.sawWritable) return READABLE_AFTER_WRITABLE;
      this.readableLength += len;
    } else {
      if (!this.sawWritable) this.firstWritable();
      this.writableLength += len;
    }
    if (len === 0) return NONE;
    // With hi above MAX_ADDR_HI the sum may round, but it stays at or above 2^53, beyond every
    // region, so the comparisons below are exact where they can succeed.
    const addr = hi * TWO_32 + lo;
    if (addr >= this.hitStart && addr + len <= this.hitEnd && (this.hitWritable || !writable)) {
      this.pushSegment(this.hitIndex, addr - this.hitStart, len);
      return NONE;
    }
    return this.addBufferSlow(hi > MAX_ADDR_HI ? -1 : addr, len, writable);
  }

  /** Marks the chain faulted and drops whatever buffers it had gathered. */
  refuse(fault: ChainFault): void {
    this.fault = fault;
    this.segCount = 0;
    this.sawWritable = false;
    this.readableLength = 0;
    this.writableLength = 0;
  }

  /** Resets both cursors to the start of their parts; called once the chain is complete. */
  rewind(): void {
    const readable = this.sawWritable ? this.readableCount : this.segCount;
    this.reader.reset(0, this.readableLength);
    this.writer.reset(readable, this.writableLength);
  }

  private firstWritable(): void {
    this.sawWritable = true;
    this.readableCount = this.segCount;
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
      this.pushSegment(index, addr - region.guestAddress, len);
      return NONE;
    }
    if (!memory.checkRange(addr, len, access)) return BUFFER_OUTSIDE_MEMORY;
    for (let cursor = addr, end = addr + len; cursor < end; ) {
      const region = memory.regionAt(cursor) as GuestMemoryRegion;
      const stop = Math.min(end, region.end);
      this.pushSegment(this.regions.indexOf(region), cursor - region.guestAddress, stop - cursor);
      cursor = stop;
    }
    return NONE;
  }

  private pushSegment(region: number, offset: number, len: number): void {
    const i = 3 * this.segCount++;
    let segs = this.segs;
    if (i === segs.length) {
      segs = new Float64Array(2 * i);
      segs.set(this.segs);
      this.segs = segs;
    }
    segs[i] = region;
    segs[i + 1] = offset;
    segs[i + 2] = len;
  }
}
