import { GuestMemory } from '@virtio-ts/virtqueue';
import { CcwFlag } from './constants.js';

/** A command outcome: the device rejects the command (unit check, sense: command reject). */
export const COMMAND_REJECT = -1;
/** A command outcome: the CCW's data address is invalid (channel program check). */
export const PROGRAM_CHECK = -2;

/** Format-1 CCW data addresses are 31 bits wide. */
const DATA_ADDRESS_LIMIT = 2 ** 31;

/**
 * The data area of the CCW being executed: `count` bytes at the 31-bit data
 * address. Command handlers read the driver's input through it with explicit
 * byte order (the communication blocks are big-endian, spec 4.3) and store
 * their output through it, truncated to `count` as a channel does. Every access
 * is checked against the count and guest memory first, so a handler never
 * throws: a failed check records why in {@link failure} and returns false.
 */
export class ChannelData {
  /** The CCW's data address. */
  address = 0;
  /** The CCW's byte count. */
  count = 0;
  /** The CCW's flags ({@link CcwFlag}). */
  flags = 0;
  /** Why the last failed check failed: {@link COMMAND_REJECT} or {@link PROGRAM_CHECK}. */
  failure = PROGRAM_CHECK;
  /** The count was shorter than the input the command needs: an incorrect length unless SLI suppresses it. */
  short = false;
  /** Set by a command that completes only once this settles (see {@link completeWhen}). */
  completion: Promise<void> | undefined;
  private guest = new GuestMemory([]);
  private readonly scratchBytes = new Uint8Array(8);
  private readonly scratch = new DataView(this.scratchBytes.buffer);

  /**
   * Points the data area at the next CCW.
   * @internal
   */
  load(memory: GuestMemory, address: number, count: number, flags: number): void {
    this.guest = memory;
    this.address = address;
    this.count = count;
    this.flags = flags;
    this.short = false;
    this.completion = undefined;
  }

  /**
   * The command has been executed but completes only once `done` settles (a
   * device reset still finishing its in-flight I/O, spec 4.3.3.3.1): the
   * channel program waits there, and its status becomes pending afterwards.
   */
  completeWhen(done: Promise<void>): void {
    this.completion = done;
  }

  /** The driver suppressed incorrect-length indication (SLI). */
  get suppressLength(): boolean {
    return (this.flags & CcwFlag.SLI) !== 0;
  }

  /**
   * Checks that the driver supplied `length` bytes of input. A shorter count
   * cannot be executed, with or without SLI (spec 4.3.1.3: "MUST present a
   * check condition"): the command is rejected, and without SLI the length is
   * also indicated as incorrect. Input outside guest memory is a channel
   * program check.
   */
  require(length: number): boolean {
    if (this.count < length) {
      this.failure = COMMAND_REJECT;
      this.short = true;
      return false;
    }
    return this.inMemory(0, length, 'read');
  }

  /** Byte `offset` of the input. Only after {@link require} covered it. */
  u8(offset: number): number {
    return this.guest.getU8(this.address + offset);
  }

  /** Big-endian u16 at `offset` of the input. */
  be16(offset: number): number {
    const v = this.guest.getU16(this.address + offset);
    return ((v & 0xff) << 8) | (v >>> 8);
  }

  /** Big-endian u32 at `offset` of the input. */
  be32(offset: number): number {
    return swap32(this.guest.getU32(this.address + offset));
  }

  /** Little-endian u32 at `offset` of the input (the feature word, spec 4.3.2.4). */
  le32(offset: number): number {
    return this.guest.getU32(this.address + offset);
  }

  /**
   * Big-endian u64 at `offset` of the input, as a number: exact below 2^53,
   * otherwise not a safe integer, which callers treat as invalid.
   */
  be64(offset: number): number {
    return this.be32(offset) * 2 ** 32 + this.be32(offset + 4);
  }

  /** Copies `dst.length` input bytes at `offset` into `dst`. Only after {@link require} covered them. */
  readInto(offset: number, dst: Uint8Array): void {
    if (dst.length > 0) this.guest.read(this.address + offset, dst);
  }

  /** Stores a byte at `offset`; see {@link storeBytes}. */
  storeU8(offset: number, value: number): boolean {
    this.scratch.setUint8(0, value);
    return this.store(offset, this.scratchBytes, 1);
  }

  /** Stores a big-endian u16 at `offset`; see {@link storeBytes}. */
  storeBe16(offset: number, value: number): boolean {
    this.scratch.setUint16(0, value);
    return this.store(offset, this.scratchBytes, 2);
  }

  /** Stores a little-endian u32 at `offset`; see {@link storeBytes}. */
  storeLe32(offset: number, value: number): boolean {
    this.scratch.setUint32(0, value, true);
    return this.store(offset, this.scratchBytes, 4);
  }

  /**
   * Stores `bytes` at `offset`, truncated to the CCW's count as a channel
   * truncates input data; with SKIP nothing reaches memory. False (a channel
   * program check) when the stored range is not writable guest memory.
   */
  storeBytes(offset: number, bytes: Uint8Array): boolean {
    return this.store(offset, bytes, bytes.length);
  }

  private store(offset: number, source: Uint8Array, size: number): boolean {
    const n = Math.min(size, this.count - offset);
    if (n <= 0) return true;
    if (!this.inMemory(offset, n, 'write')) return false;
    if ((this.flags & CcwFlag.SKIP) !== 0) return true;
    // Byte by byte: no allocation, and the range may cross from one memory region into the next.
    for (let i = 0; i < n; i++) this.guest.setU8(this.address + offset + i, source[i] as number);
    return true;
  }

  private inMemory(offset: number, length: number, access: 'read' | 'write'): boolean {
    if (length === 0) return true;
    const start = this.address + offset;
    if (start + length > DATA_ADDRESS_LIMIT || !this.guest.checkRange(start, length, access)) {
      this.failure = PROGRAM_CHECK;
      return false;
    }
    return true;
  }
}

function swap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}
