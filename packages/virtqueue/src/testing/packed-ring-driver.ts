import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { QueueConfig } from '../queue/virtqueue.js';
import type { GuestAllocator } from './allocator.js';
import type { AddOptions, GuestBuffer, UsedElement } from './split-ring-driver.js';

/** A raw packed descriptor, for writing malformed rings on purpose. */
export interface RawPackedDescriptor {
  /** Buffer guest-physical address (le64 addr). */
  readonly addr: number;
  /** Buffer length in bytes (le32 len). */
  readonly len: number;
  /** Buffer ID (le16 id); the device reads it from the last descriptor of a list (spec 2.8.6). */
  readonly id: number;
  /**
   * Flags (le16 flags): VIRTQ_DESC_F_NEXT, WRITE, INDIRECT. {@link PackedRingDriver.addRaw}
   * adds the lap's AVAIL/USED bits; {@link PackedRingDriver.writeRaw} writes them as given.
   */
  readonly flags: number;
}

/** Places a packed ring's three areas (spec 2.8.10) with the allocator; returns the queue configuration. */
export function placePackedRing(allocator: GuestAllocator, size: number): QueueConfig {
  return {
    size,
    descAddr: allocator.alloc(16 * size, 16),
    driverAddr: allocator.alloc(4, 4),
    deviceAddr: allocator.alloc(4, 4),
  };
}

/**
 * The driver side of a packed virtqueue (spec 2.8), written from the driver
 * requirements: wrap counters, buffer IDs, making the first descriptor of a list
 * available last, reading used descriptors, and event suppression.
 */
export class PackedRingDriver {
  /** Where the ring lives. */
  readonly config: QueueConfig;
  private readonly memory: GuestMemory;
  private readonly eventIdx: boolean;
  private nextAvail = 0;
  private availWrap = 1;
  private nextUsed = 0;
  private usedWrap = 1;
  private freeSlots: number;
  private readonly freeIds: number[];
  private readonly slotsOfId: Uint16Array;
  /** Heads written but not yet made available: [slot, flags]. */
  private pendingHeads: [number, number][] = [];
  private kickedAt: [number, number] = [0, 1];

  /** Initialises the ring: zeroed descriptors and event structures, wrap counters at 1. */
  constructor(memory: GuestMemory, config: QueueConfig, options: { eventIdx?: boolean } = {}) {
    this.memory = memory;
    this.config = config;
    this.eventIdx = options.eventIdx ?? false;
    memory.fill(config.descAddr, 16 * config.size);
    memory.fill(config.driverAddr, 4);
    memory.fill(config.deviceAddr, 4);
    this.freeSlots = config.size;
    this.freeIds = Array.from({ length: config.size }, (_, i) => config.size - 1 - i);
    this.slotsOfId = new Uint16Array(config.size);
  }

  /** Descriptor slots not in use. */
  get free(): number {
    return this.freeSlots;
  }

  /** The slot and wrap counter the next descriptor goes to. */
  get availPosition(): { slot: number; wrap: number } {
    return { slot: this.nextAvail, wrap: this.availWrap };
  }

  /** Writes a chain (its head's flags held back until {@link publish}); returns its buffer ID. */
  add(buffers: readonly GuestBuffer[], options: AddOptions = {}): number {
    const needed = options.indirectTable === undefined ? buffers.length : 1;
    const id = this.freeIds.at(-1);
    if (needed === 0 || needed > this.freeSlots || id === undefined) {
      throw new RangeError(`PackedRingDriver: ${needed} descriptors wanted, ${this.freeSlots} free`);
    }
    const descriptors: RawPackedDescriptor[] = [];
    if (options.indirectTable !== undefined) {
      const table = options.indirectTable;
      buffers.forEach((b, i) => this.writeRaw(table + 16 * i, { addr: b.addr, len: b.len, id: 0, flags: b.writable ? VIRTQ_DESC_F_WRITE : 0 }));
      descriptors.push({ addr: table, len: 16 * buffers.length, id, flags: VIRTQ_DESC_F_INDIRECT });
    } else {
      buffers.forEach((b, i) =>
        descriptors.push({ addr: b.addr, len: b.len, id, flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (i < buffers.length - 1 ? VIRTQ_DESC_F_NEXT : 0) }),
      );
    }
    this.addRaw(descriptors);
    return id;
  }

  /**
   * Writes a list of raw descriptors (malformed on purpose, if wanted) at the
   * next slots, adding the current lap's AVAIL/USED bits to their flags; the
   * head's flags are held back until {@link publish}. The last descriptor's buffer
   * ID is taken out of the free IDs so that {@link takeUsed} accepts its used
   * descriptor.
   */
  addRaw(descriptors: readonly RawPackedDescriptor[]): void {
    const last = descriptors.at(-1);
    if (last === undefined || descriptors.length > this.freeSlots) {
      throw new RangeError(`PackedRingDriver: ${descriptors.length} descriptors wanted, ${this.freeSlots} free`);
    }
    const free = this.freeIds.indexOf(last.id);
    if (free >= 0) this.freeIds.splice(free, 1);
    descriptors.forEach((d, i) => {
      const flags = d.flags | this.availFlags;
      const slot = this.nextAvail;
      this.writeRaw(this.descAddr(slot), { ...d, flags: 0 });
      if (i === 0) this.pendingHeads.push([slot, flags]);
      else this.memory.setU16(this.descAddr(slot) + 14, flags);
      if (++this.nextAvail === this.config.size) {
        this.nextAvail = 0;
        this.availWrap ^= 1;
      }
    });
    this.freeSlots -= descriptors.length;
    if (last.id < this.config.size) this.slotsOfId[last.id] = descriptors.length;
  }

  /** Makes written chains available by storing their heads' flags (spec 2.8.21). */
  publish(): void {
    for (const [slot, flags] of this.pendingHeads) this.memory.setU16(this.descAddr(slot) + 14, flags);
    this.pendingHeads = [];
  }

  /** Whether the device wants a notification for what was published since the last call (spec 2.8.10). */
  kickNeeded(): boolean {
    const [oldSlot, oldWrap] = this.kickedAt;
    this.kickedAt = [this.nextAvail, this.availWrap];
    const flags = this.memory.getU16(this.config.deviceAddr + 2) & 3;
    if (flags === RING_EVENT_FLAGS_DISABLE) return false;
    if (flags !== RING_EVENT_FLAGS_DESC || !this.eventIdx) return true;
    const offWrap = this.memory.getU16(this.config.deviceAddr);
    const span = 2 * this.config.size;
    const lin = (slot: number, wrap: number): number => (wrap === 1 ? slot : slot + this.config.size);
    const old = lin(oldSlot, oldWrap);
    const event = lin(offWrap & 0x7fff, offWrap >>> 15);
    return (event - old + span) % span < (lin(this.nextAvail, this.availWrap) - old + span) % span;
  }

  /** The next used descriptor, freeing its slots and ID, or null if none. */
  takeUsed(): UsedElement | null {
    const addr = this.descAddr(this.nextUsed);
    const flags = this.memory.getU16(addr + 14);
    const avail = (flags & VIRTQ_DESC_F_AVAIL) !== 0 ? 1 : 0;
    const used = (flags & VIRTQ_DESC_F_USED) !== 0 ? 1 : 0;
    if (avail !== used || used !== this.usedWrap) return null;
    const id = this.memory.getU16(addr + 12);
    const len = this.memory.getU32(addr + 8);
    const slots = id < this.config.size ? (this.slotsOfId[id] ?? 0) : 0;
    if (slots === 0) throw new Error(`PackedRingDriver: device used unknown buffer ID ${id}`);
    this.nextUsed += slots;
    if (this.nextUsed >= this.config.size) {
      this.nextUsed -= this.config.size;
      this.usedWrap ^= 1;
    }
    this.freeSlots += slots;
    this.slotsOfId[id] = 0;
    this.freeIds.push(id);
    return { id, len };
  }

  /** Sets the driver event suppression structure (spec 2.8.10): ENABLE, DISABLE, or DESC at `offWrap`. */
  setDriverEvent(flags: number, offWrap = 0): void {
    this.memory.setU16(this.config.driverAddr, offWrap);
    this.memory.setU16(this.config.driverAddr + 2, flags);
  }

  /** The position the next used descriptor will appear at, as off_wrap (for DESC event suppression). */
  get usedOffWrap(): number {
    return this.nextUsed | (this.usedWrap << 15);
  }

  /** Writes a descriptor ring entry (raw). */
  writeDescriptor(slot: number, desc: RawPackedDescriptor): void {
    this.writeRaw(this.descAddr(slot), desc);
  }

  /** Writes a packed descriptor anywhere in guest memory (raw). */
  writeRaw(addr: number, desc: RawPackedDescriptor): void {
    this.memory.setU64(addr, BigInt(desc.addr));
    this.memory.setU32(addr + 8, desc.len);
    this.memory.setU16(addr + 12, desc.id);
    this.memory.setU16(addr + 14, desc.flags);
  }

  /** The flags an available descriptor needs in the current lap. */
  get availFlags(): number {
    return this.availWrap === 1 ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
  }

  private descAddr(slot: number): number {
    return this.config.descAddr + 16 * slot;
  }
}
