import type { GuestMemory, GuestMemoryRegion } from '../memory/guest-memory.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import { VirtqueueBase, type QueueLayoutOptions } from './base.js';
import type { Chain } from './chain.js';
import { ChainFault } from './fault.js';
import { ringU16 } from './ring-view.js';
import { splitRingSizes } from './split.js';
import type { QueueConfig, QueueHooks, QueuePosition } from './virtqueue.js';

const { NONE, CHAIN_TOO_LONG, DESCRIPTOR_INDEX_OUT_OF_RANGE, INDIRECT_NOT_NEGOTIATED, INDIRECT_WITH_NEXT, NESTED_INDIRECT } = ChainFault;

/** DataView's `littleEndian` argument for the ring's fields. */
const BIG = false;

/**
 * The ring's u16 index and flag fields are accessed through native
 * (little-endian) u16 arrays, because Atomics give the ordering against the
 * driver; each value is byte-swapped on the way in and out.
 */
function swap16(value: number): number {
  return ((value & 0xff) << 8) | (value >>> 8);
}

/** A DataView of [addr, addr + bytes), which createVirtqueue has checked lies in one writable region. */
function ringView(memory: GuestMemory, addr: number, bytes: number): DataView {
  const region = memory.regions[memory.regionIndexOf(addr, bytes, 'write')] as GuestMemoryRegion;
  return new DataView(region.bytes.buffer, region.bytes.byteOffset + (addr - region.guestAddress), bytes);
}

/**
 * The device side of a legacy split virtqueue in big-endian byte order: the
 * spec 2.7 layout with every field in the guest's byte order, as legacy
 * interfaces require (spec 2.7.3) — big-endian on s390, whose legacy drivers
 * use virtio-ccw revision 0.
 *
 * It follows SplitVirtqueue step for step — the same chain validation
 * and faults, corrupt-ring detection, event index and indirect tables — but
 * reads and writes the rings in big-endian order. It is a class of its own
 * rather than a byte-order switch inside SplitVirtqueue so that the
 * little-endian ring, the hot path, keeps reading native typed arrays with no
 * extra work per descriptor.
 */
export class BigEndianSplitVirtqueue extends VirtqueueBase {
  /** @inheritDoc */
  readonly packed = false;
  private readonly mask: number;
  private readonly desc: DataView;
  /** avail, in guest byte order: [0] flags, [1] idx, [2 + i] ring[i], [2 + size] used_event. */
  private readonly avail16: Uint16Array;
  /** used, in guest byte order: [0] flags, [1] idx, [2 + 4 * size] avail_event. */
  private readonly used16: Uint16Array;
  /** used, for the ring entries: ring[i].id at 4 + 8 * i, ring[i].len at 8 + 8 * i. */
  private readonly used: DataView;
  private lastAvailIdx: number;
  private usedIdx: number;
  /** Entries known to be available beyond lastAvailIdx (a shadow of avail->idx). */
  private availPending = 0;
  private signalledUsed = 0;
  private signalledValid = false;

  /** Creates the queue; `config` and `start` must have been checked by createVirtqueue. */
  constructor(memory: GuestMemory, config: QueueConfig, hooks: QueueHooks, options: QueueLayoutOptions, start?: QueuePosition) {
    super(memory, config.size, hooks, options);
    const sizes = splitRingSizes(config.size);
    this.mask = config.size - 1;
    this.desc = ringView(memory, config.descAddr, sizes.desc);
    this.avail16 = ringU16(memory, config.driverAddr, sizes.avail);
    this.used16 = ringU16(memory, config.deviceAddr, sizes.used);
    this.used = ringView(memory, config.deviceAddr, sizes.used);
    this.lastAvailIdx = start?.availIndex ?? 0;
    this.usedIdx = start?.usedIndex ?? 0;
    this.signalledUsed = this.usedIdx;
  }

  /**
   * last_avail_idx and the used ring's idx; split rings have no wrap counters.
   * @inheritDoc
   */
  position(): QueuePosition {
    return { availIndex: this.lastAvailIdx, availWrapCounter: false, usedIndex: this.usedIdx, usedWrapCounter: false };
  }

  /**
   * Clears VIRTQ_USED_F_NO_NOTIFY, or under VIRTIO_F_EVENT_IDX publishes avail_event (spec 2.7.10).
   * @inheritDoc
   */
  enableNotification(): boolean {
    this.notificationsEnabled = true;
    if (this.detached) return false;
    if (!this.eventIdx) this.storeUsedFlags(this.usedFlags() & ~VIRTQ_USED_F_NO_NOTIFY);
    return this.rearm();
  }

  /**
   * Sets VIRTQ_USED_F_NO_NOTIFY; under VIRTIO_F_EVENT_IDX it leaves avail_event stale instead,
   * which keeps the driver quiet just as well (spec 2.7.10).
   * @inheritDoc
   */
  disableNotification(): void {
    this.notificationsEnabled = false;
    // With EVENT_IDX a stale avail_event already keeps the driver quiet (spec 2.7.10).
    if (!this.eventIdx && !this.detached) this.storeUsedFlags(this.usedFlags() | VIRTQ_USED_F_NO_NOTIFY);
  }

  protected popChain(): Chain | null {
    if (this.availPending === 0 && !this.refill()) return null;
    if (this.inFlight >= this.size) return this.corrupt('the driver made more buffers available than the queue holds');
    const head = swap16(this.avail16[2 + (this.lastAvailIdx & this.mask)] as number);
    if (head > this.mask) {
      return this.corrupt(`available ring entry ${this.lastAvailIdx & this.mask} names descriptor ${head}, beyond the queue size`);
    }
    this.lastAvailIdx = (this.lastAvailIdx + 1) & 0xffff;
    this.availPending--;
    const chain = this.takeChain(head);
    const fault = this.walk(chain, head);
    if (fault !== NONE) chain.refuse(fault);
    chain.rewind();
    return chain;
  }

  protected rewind(_chain: Chain): void {
    this.lastAvailIdx = (this.lastAvailIdx - 1) & 0xffff;
    this.availPending++;
  }

  protected writeUsed(chain: Chain, len: number): void {
    const at = 4 + 8 * (this.usedIdx & this.mask);
    this.used.setUint32(at, chain.id, BIG);
    this.used.setUint32(at + 4, len, BIG);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.batch++;
  }

  protected publish(): boolean {
    // A seq-cst store orders the entries before idx and the idx before the
    // used_event / flags load below (spec 2.7.8.2, 2.7.10).
    Atomics.store(this.used16, 1, swap16(this.usedIdx));
    if (!this.eventIdx) return (swap16(Atomics.load(this.avail16, 0)) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    const usedEvent = swap16(Atomics.load(this.avail16, 2 + this.size));
    const old = this.signalledUsed;
    const valid = this.signalledValid;
    this.signalledUsed = this.usedIdx;
    this.signalledValid = true;
    // vring_need_event (spec 2.7.10): interrupt if used_event lies in [old, new).
    return !valid || ((this.usedIdx - usedEvent - 1) & 0xffff) < ((this.usedIdx - old) & 0xffff);
  }

  private usedFlags(): number {
    return swap16(this.used16[0] as number);
  }

  private storeUsedFlags(flags: number): void {
    Atomics.store(this.used16, 0, swap16(flags));
  }

  /** The known entries are used up: look for more, re-arming notifications if the ring is empty. */
  private refill(): boolean {
    return this.refreshAvail() || (this.notificationsEnabled && this.rearm());
  }

  /** Reloads avail->idx; returns whether entries are pending. */
  private refreshAvail(): boolean {
    const availIdx = swap16(Atomics.load(this.avail16, 1));
    const pending = (availIdx - this.lastAvailIdx) & 0xffff;
    if (pending > this.size) {
      this.corrupt(`available index moved from ${this.lastAvailIdx} to ${availIdx}, more than the queue size`);
      return false;
    }
    this.availPending = pending;
    return pending !== 0;
  }

  /** Tells the driver where to notify next, then closes the race with a re-check (spec 2.7.10). */
  private rearm(): boolean {
    if (this.eventIdx) Atomics.store(this.used16, 2 + 4 * this.size, swap16(this.lastAvailIdx));
    return !this.broken && this.refreshAvail();
  }

  /**
   * Walks the chain from `head`, as SplitVirtqueue does: direct descriptors,
   * then at most one indirect table, which ends the chain (spec 2.7.5.3.2);
   * at most `size` descriptors in the table and at most the table's length in
   * an indirect table (spec 2.7.5.3.1). A big-endian descriptor holds the high
   * word of its address first.
   */
  private walk(chain: Chain, head: number): ChainFault {
    const desc = this.desc;
    let index = head;
    let flags = 0;
    for (let budget = this.size; ; budget--) {
      if (budget === 0) return CHAIN_TOO_LONG;
      const at = index * 16;
      flags = desc.getUint16(at + 12, BIG);
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) break;
      const fault = chain.addBuffer(desc.getUint32(at + 4, BIG), desc.getUint32(at, BIG), desc.getUint32(at + 8, BIG), (flags & VIRTQ_DESC_F_WRITE) !== 0);
      if (fault !== NONE) return fault;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return NONE;
      index = desc.getUint16(at + 14, BIG);
      if (index > this.mask) return DESCRIPTOR_INDEX_OUT_OF_RANGE;
    }
    // The indirect descriptor's own VIRTQ_DESC_F_WRITE is ignored (spec 2.7.5.3.2).
    if (!this.indirect) return INDIRECT_NOT_NEGOTIATED;
    if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return INDIRECT_WITH_NEXT;
    const at = index * 16;
    const len = desc.getUint32(at + 8, BIG);
    const tableFault = this.indirectTable(desc.getUint32(at + 4, BIG), desc.getUint32(at, BIG), len);
    if (tableFault !== NONE) return tableFault;
    const view = this.tableView;
    const base = this.tableBase;
    const count = len / 16;
    index = 0;
    for (let budget = count; budget > 0; budget--) {
      const entry = base + index * 16;
      flags = view.getUint16(entry + 12, BIG);
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) return NESTED_INDIRECT;
      const fault = chain.addBuffer(view.getUint32(entry + 4, BIG), view.getUint32(entry, BIG), view.getUint32(entry + 8, BIG), (flags & VIRTQ_DESC_F_WRITE) !== 0);
      if (fault !== NONE) return fault;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return NONE;
      index = view.getUint16(entry + 14, BIG);
      if (index >= count) return DESCRIPTOR_INDEX_OUT_OF_RANGE;
    }
    return CHAIN_TOO_LONG;
  }
}
