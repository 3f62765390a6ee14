import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { ByteOrder } from '../queue/create.js';
import { splitRingSizes } from '../queue/split.js';
import type { QueueConfig } from '../queue/virtqueue.js';
import type { GuestAllocator } from './allocator.js';

/** One buffer of a chain, as the driver describes it. */
export interface GuestBuffer {
  /** Guest-physical address. */
  readonly addr: number;
  /** Length in bytes. */
  readonly len: number;
  /** Device-writable (otherwise device-readable). */
  readonly writable: boolean;
}

/** A used element read back from the device. */
export interface UsedElement {
  /** Head index (split) or buffer ID (packed). */
  readonly id: number;
  /** Bytes the device reports written. */
  readonly len: number;
}

/** A raw split descriptor, for writing malformed tables on purpose. */
export interface RawSplitDescriptor {
  readonly addr: number;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

/** Options for {@link SplitRingDriver.add}. */
export interface AddOptions {
  /** Put the chain in an indirect table at this guest address (16 * buffers bytes). */
  readonly indirectTable?: number;
}

/** Places a split ring's three areas (spec 2.7) with the allocator; returns the queue configuration. */
export function placeSplitRing(allocator: GuestAllocator, size: number): QueueConfig {
  const sizes = splitRingSizes(size);
  return {
    size,
    descAddr: allocator.alloc(sizes.desc, 16),
    driverAddr: allocator.alloc(sizes.avail, 2),
    deviceAddr: allocator.alloc(sizes.used, 4),
  };
}

/** Options for {@link SplitRingDriver}. */
export interface SplitRingDriverOptions {
  /** VIRTIO_F_EVENT_IDX is negotiated. */
  readonly eventIdx?: boolean;
  /** The ring's byte order: 'big-endian' for a legacy driver on a big-endian guest (spec 2.7.3). Defaults to little-endian. */
  readonly byteOrder?: ByteOrder;
}

/**
 * The driver side of a split virtqueue (spec 2.7), written from the driver
 * requirements: a free list of descriptors, the available ring, reading the used
 * ring, and both notification suppression schemes, in either byte order. Raw
 * writers let tests put malformed descriptors and indices in the ring on purpose.
 */
export class SplitRingDriver {
  /** Where the ring lives. */
  readonly config: QueueConfig;
  /** Entries made available but not yet published with {@link publish}. */
  private staged = 0;
  private availIdx = 0;
  private lastUsedIdx = 0;
  private kickedAt = 0;
  private freeHead = 0;
  private freeCount: number;
  private readonly chainLength: Uint16Array;
  private readonly memory: GuestMemory;
  private readonly eventIdx: boolean;
  private readonly bigEndian: boolean;

  /** Initialises the ring in guest memory: zeroed areas and a free list through every descriptor. */
  constructor(memory: GuestMemory, config: QueueConfig, options: SplitRingDriverOptions = {}) {
    this.memory = memory;
    this.config = config;
    this.eventIdx = options.eventIdx ?? false;
    this.bigEndian = options.byteOrder === 'big-endian';
    const sizes = splitRingSizes(config.size);
    memory.fill(config.descAddr, sizes.desc);
    memory.fill(config.driverAddr, sizes.avail);
    memory.fill(config.deviceAddr, sizes.used);
    for (let i = 0; i < config.size; i++) this.setU16(this.descAddr(i) + 14, (i + 1) % config.size);
    this.freeCount = config.size;
    this.chainLength = new Uint16Array(config.size);
  }

  /** Descriptors not in use. */
  get free(): number {
    return this.freeCount;
  }

  /** The driver's available index, including staged entries. */
  get availIndex(): number {
    return this.availIdx;
  }

  /**
   * Adds a chain and stages its head in the available ring; returns the head.
   * Throws when the ring lacks descriptors (a test bug, not a device one).
   */
  add(buffers: readonly GuestBuffer[], options: AddOptions = {}): number {
    const needed = options.indirectTable === undefined ? buffers.length : 1;
    if (needed === 0 || needed > this.freeCount) throw new RangeError(`SplitRingDriver: ${needed} descriptors wanted, ${this.freeCount} free`);
    const head = this.freeHead;
    if (options.indirectTable !== undefined) {
      const table = options.indirectTable;
      buffers.forEach((b, i) => {
        const last = i === buffers.length - 1;
        this.writeRaw(table + 16 * i, { addr: b.addr, len: b.len, flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next: last ? 0 : i + 1 });
      });
      const next = this.getU16(this.descAddr(head) + 14);
      this.writeDescriptor(head, { addr: table, len: 16 * buffers.length, flags: VIRTQ_DESC_F_INDIRECT, next });
      this.freeHead = next;
    } else {
      let index = head;
      buffers.forEach((b, i) => {
        const next = this.getU16(this.descAddr(index) + 14);
        const last = i === buffers.length - 1;
        this.writeDescriptor(index, { addr: b.addr, len: b.len, flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next });
        if (!last) index = next;
        else this.freeHead = next;
      });
    }
    this.freeCount -= needed;
    this.chainLength[head] = needed;
    this.pushAvail(head);
    return head;
  }

  /** Stages `head` in the next available ring slot without touching descriptors (raw). */
  pushAvail(head: number): void {
    this.setU16(this.config.driverAddr + 4 + 2 * ((this.availIdx + this.staged) % this.config.size), head);
    this.staged++;
  }

  /** Makes staged entries visible by writing avail->idx (spec 2.7.13.3). */
  publish(): void {
    this.availIdx = (this.availIdx + this.staged) & 0xffff;
    this.staged = 0;
    this.setU16(this.config.driverAddr + 2, this.availIdx);
  }

  /** Writes avail->idx directly, e.g. to jump by more than the queue size (raw). */
  setAvailIdx(value: number): void {
    this.availIdx = value & 0xffff;
    this.staged = 0;
    this.setU16(this.config.driverAddr + 2, this.availIdx);
  }

  /**
   * Whether the device wants a notification for what was published since the
   * last call (spec 2.7.10: avail_event with EVENT_IDX, else VIRTQ_USED_F_NO_NOTIFY).
   */
  kickNeeded(): boolean {
    const old = this.kickedAt;
    const now = this.availIdx;
    this.kickedAt = now;
    if (this.eventIdx) {
      const availEvent = this.getU16(this.config.deviceAddr + 4 + 8 * this.config.size);
      return ((now - availEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.getU16(this.config.deviceAddr) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** The next used element, returning its descriptors to the free list, or null if none. */
  takeUsed(): UsedElement | null {
    const usedIdx = this.getU16(this.config.deviceAddr + 2);
    if (usedIdx === this.lastUsedIdx) return null;
    const slot = this.lastUsedIdx % this.config.size;
    const id = this.getU32(this.config.deviceAddr + 4 + 8 * slot);
    const len = this.getU32(this.config.deviceAddr + 8 + 8 * slot);
    this.lastUsedIdx = (this.lastUsedIdx + 1) & 0xffff;
    this.recycle(id);
    return { id, len };
  }

  /** Used elements the device published that were not yet taken. */
  get usedPending(): number {
    return (this.getU16(this.config.deviceAddr + 2) - this.lastUsedIdx) & 0xffff;
  }

  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT. */
  suppressInterrupts(suppress: boolean): void {
    this.setU16(this.config.driverAddr, suppress ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
  }

  /** Writes used_event: with EVENT_IDX, interrupt once the used index passes `value`. */
  setUsedEvent(value: number): void {
    this.setU16(this.config.driverAddr + 4 + 2 * this.config.size, value & 0xffff);
  }

  /** Writes a descriptor table entry (raw). */
  writeDescriptor(index: number, desc: RawSplitDescriptor): void {
    this.writeRaw(this.descAddr(index), desc);
  }

  /** Writes a descriptor anywhere in guest memory, e.g. into an indirect table (raw). */
  writeRaw(addr: number, desc: RawSplitDescriptor): void {
    this.setU64(addr, desc.addr);
    this.setU32(addr + 8, desc.len);
    this.setU16(addr + 12, desc.flags);
    this.setU16(addr + 14, desc.next);
  }

  /** The ring's fields, in its byte order. */
  private getU16(addr: number): number {
    const value = this.memory.getU16(addr);
    return this.bigEndian ? swap16(value) : value;
  }

  private setU16(addr: number, value: number): void {
    this.memory.setU16(addr, this.bigEndian ? swap16(value & 0xffff) : value);
  }

  private getU32(addr: number): number {
    const value = this.memory.getU32(addr);
    return this.bigEndian ? swap32(value) : value;
  }

  private setU32(addr: number, value: number): void {
    this.memory.setU32(addr, this.bigEndian ? swap32(value >>> 0) : value);
  }

  private setU64(addr: number, value: number): void {
    const hi = Math.floor(value / 2 ** 32);
    const lo = value >>> 0;
    this.setU32(addr + (this.bigEndian ? 4 : 0), lo);
    this.setU32(addr + (this.bigEndian ? 0 : 4), hi);
  }

  private descAddr(index: number): number {
    return this.config.descAddr + 16 * index;
  }

  private recycle(head: number): void {
    const count = this.chainLength[head] ?? 0;
    if (count === 0 || head >= this.config.size) return;
    let last = head;
    for (let i = 1; i < count; i++) last = this.getU16(this.descAddr(last) + 14);
    this.setU16(this.descAddr(last) + 14, this.freeHead);
    this.freeHead = head;
    this.freeCount += count;
    this.chainLength[head] = 0;
  }
}

function swap16(value: number): number {
  return ((value & 0xff) << 8) | (value >>> 8);
}

function swap32(value: number): number {
  return (((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >>> 8) & 0xff00) | (value >>> 24)) >>> 0;
}
