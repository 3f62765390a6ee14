import type { GuestMemory } from '../memory/guest-memory.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import { VirtqueueBase, type QueueLayoutOptions } from './base.js';
import type { Chain } from './chain.js';
import { ChainFault } from './fault.js';
import { ringU16, ringU32 } from './ring-view.js';
import type { QueueConfig, QueueHooks, QueuePosition } from './virtqueue.js';

const { NONE, CHAIN_TOO_LONG, DESCRIPTOR_INDEX_OUT_OF_RANGE, INDIRECT_NOT_NEGOTIATED, INDIRECT_WITH_NEXT, NESTED_INDIRECT } = ChainFault;

/** Bytes of each split-ring area for `size` entries (spec 2.7: 16*size, 6+2*size, 6+8*size). */
export function splitRingSizes(size: number): { desc: number; avail: number; used: number } {
  return { desc: 16 * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

/**
 * The device side of a split virtqueue (spec 2.7): reads the descriptor table
 * and available ring, writes the used ring.
 */
export class SplitVirtqueue extends VirtqueueBase {
  /** @inheritDoc */
  readonly packed = false;
  private readonly mask: number;
  private readonly desc32: Uint32Array;
  private readonly desc16: Uint16Array;
  /** avail: [0] flags, [1] idx, [2 + i] ring[i], [2 + size] used_event. */
  private readonly avail16: Uint16Array;
  /** used: [0] flags, [1] idx, [2 + 4 * size] avail_event. */
  private readonly used16: Uint16Array;
  /** used: [1 + 2 * i] ring[i].id, [2 + 2 * i] ring[i].len. */
  private readonly used32: Uint32Array;
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
    this.desc32 = ringU32(memory, config.descAddr, sizes.desc);
    this.desc16 = ringU16(memory, config.descAddr, sizes.desc);
    this.avail16 = ringU16(memory, config.driverAddr, sizes.avail);
    this.used16 = ringU16(memory, config.deviceAddr, sizes.used);
    this.used32 = ringU32(memory, config.deviceAddr, sizes.used);
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
    if (!this.eventIdx) Atomics.store(this.used16, 0, (this.used16[0] as number) & ~VIRTQ_USED_F_NO_NOTIFY);
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
    if (!this.eventIdx && !this.detached) Atomics.store(this.used16, 0, (this.used16[0] as number) | VIRTQ_USED_F_NO_NOTIFY);
  }

  protected popChain(): Chain | null {
    if (this.availPending === 0 && !this.refill()) return null;
    if (this.inFlight >= this.size) return this.corrupt('the driver made more buffers available than the queue holds');
    const head = this.avail16[2 + (this.lastAvailIdx & this.mask)] as number;
    if (head > this.mask) return this.headOutOfRange(head);
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
    const slot = this.usedIdx & this.mask;
    this.used32[1 + 2 * slot] = chain.id;
    this.used32[2 + 2 * slot] = len;
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.batch++;
  }

  protected publish(): boolean {
    // A seq-cst store orders the entries before idx and the idx before the
    // used_event / flags load below (spec 2.7.8.2, 2.7.10).
    Atomics.store(this.used16, 1, this.usedIdx);
    if (!this.eventIdx) return ((Atomics.load(this.avail16, 0) as number) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    const usedEvent = Atomics.load(this.avail16, 2 + this.size) as number;
    const old = this.signalledUsed;
    const valid = this.signalledValid;
    this.signalledUsed = this.usedIdx;
    this.signalledValid = true;
    // vring_need_event (spec 2.7.10): interrupt if used_event lies in [old, new).
    return !valid || ((this.usedIdx - usedEvent - 1) & 0xffff) < ((this.usedIdx - old) & 0xffff);
  }

  /** The known entries are used up: look for more, re-arming notifications if the ring is empty. */
  private refill(): boolean {
    return this.refreshAvail() || (this.notificationsEnabled && this.rearm());
  }

  private headOutOfRange(head: number): null {
    return this.corrupt(`available ring entry ${this.lastAvailIdx & this.mask} names descriptor ${head}, beyond the queue size`);
  }

  /** Reloads avail->idx; returns whether entries are pending. */
  private refreshAvail(): boolean {
    const availIdx = Atomics.load(this.avail16, 1) as number;
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
    if (this.eventIdx) Atomics.store(this.used16, 2 + 4 * this.size, this.lastAvailIdx);
    return !this.broken && this.refreshAvail();
  }

  /**
   * Walks the chain from `head`: direct descriptors, then at most one indirect
   * table, which ends the chain (spec 2.7.5.3.2). At most `size` descriptors in
   * the table and at most the table's length in an indirect table, so that a loop
   * ends (spec 2.7.5.3.1).
   *
   * One function for both parts on purpose: it is too big for V8 to inline into
   * pop(), so it is optimised on its own with the per-buffer work (addBuffer)
   * inlined, while pop() and addUsed() stay small enough to inline into the
   * device's loop. Split differently, which calls get inlined varies from run to
   * run, and the rate with it.
   */
  private walk(chain: Chain, head: number): ChainFault {
    const desc32 = this.desc32;
    const desc16 = this.desc16;
    let index = head;
    let flags = 0;
    for (let budget = this.size; ; budget--) {
      if (budget === 0) return CHAIN_TOO_LONG;
      flags = desc16[index * 8 + 6] as number;
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) break;
      const fault = chain.addBuffer(desc32[index * 4] as number, desc32[index * 4 + 1] as number, desc32[index * 4 + 2] as number, (flags & VIRTQ_DESC_F_WRITE) !== 0);
      if (fault !== NONE) return fault;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return NONE;
      index = desc16[index * 8 + 7] as number;
      if (index > this.mask) return DESCRIPTOR_INDEX_OUT_OF_RANGE;
    }
    // The indirect descriptor's own VIRTQ_DESC_F_WRITE is ignored (spec 2.7.5.3.2).
    if (!this.indirect) return INDIRECT_NOT_NEGOTIATED;
    if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return INDIRECT_WITH_NEXT;
    const len = desc32[index * 4 + 2] as number;
    const tableFault = this.indirectTable(desc32[index * 4] as number, desc32[index * 4 + 1] as number, len);
    if (tableFault !== NONE) return tableFault;
    const view = this.tableView;
    const base = this.tableBase;
    const count = len / 16;
    index = 0;
    for (let budget = count; budget > 0; budget--) {
      const at = base + index * 16;
      flags = view.getUint16(at + 12, true);
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) return NESTED_INDIRECT;
      const fault = chain.addBuffer(view.getUint32(at, true), view.getUint32(at + 4, true), view.getUint32(at + 8, true), (flags & VIRTQ_DESC_F_WRITE) !== 0);
      if (fault !== NONE) return fault;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) return NONE;
      index = view.getUint16(at + 14, true);
      if (index >= count) return DESCRIPTOR_INDEX_OUT_OF_RANGE;
    }
    return CHAIN_TOO_LONG;
  }
}
