import type { GuestMemory } from '../memory/guest-memory.js';
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import { VirtqueueBase, type QueueLayoutOptions } from './base.js';
import type { Chain } from './chain.js';
import { ChainFault } from './fault.js';
import { ringU16, ringU32 } from './ring-view.js';
import type { QueueConfig, QueueHooks, QueuePosition } from './virtqueue.js';

const { NONE, INDIRECT_NOT_NEGOTIATED, INDIRECT_WITH_NEXT } = ChainFault;

/** Bytes of each packed-ring area for `size` entries (spec 2.8.10: 16*size, 4, 4). */
export function packedRingSizes(size: number): { desc: number; driver: number; device: number } {
  return { desc: 16 * size, driver: 4, device: 4 };
}

/**
 * The device side of a packed virtqueue (spec 2.8): one descriptor ring that the
 * driver fills and the device overwrites with used descriptors, tracked with
 * wrap counters, plus the two event suppression structures.
 */
export class PackedVirtqueue extends VirtqueueBase {
  /** @inheritDoc */
  readonly packed = true;
  /** Descriptor ring, u32 view: [4i] addr lo, [4i+1] addr hi, [4i+2] len. */
  private readonly desc32: Uint32Array;
  /** Descriptor ring, u16 view: [8i+6] id, [8i+7] flags. */
  private readonly desc16: Uint16Array;
  /** Driver event suppression: [0] off_wrap, [1] flags. */
  private readonly driverEvent: Uint16Array;
  /** Device event suppression: [0] off_wrap, [1] flags. */
  private readonly deviceEvent: Uint16Array;
  private nextAvail: number;
  private availWrap: number;
  private nextUsed: number;
  private usedWrap: number;
  /** Descriptor slots popped and not yet written back as used (spec 2.8: never more than the ring). */
  private slotsInFlight = 0;
  /** AVAIL and USED both equal to the Device Ring Wrap Counter: how a used descriptor is marked (spec 2.8.1). */
  private usedFlags: number;
  private batchSlot = 0;
  private batchFlags = 0;
  private signalledPos = 0;
  private signalledValid = false;

  /** Creates the queue; `config` and `start` must have been checked by createVirtqueue. */
  constructor(memory: GuestMemory, config: QueueConfig, hooks: QueueHooks, options: QueueLayoutOptions, start?: QueuePosition) {
    super(memory, config.size, hooks, options);
    this.desc32 = ringU32(memory, config.descAddr, 16 * config.size);
    this.desc16 = ringU16(memory, config.descAddr, 16 * config.size);
    this.driverEvent = ringU16(memory, config.driverAddr, 4);
    this.deviceEvent = ringU16(memory, config.deviceAddr, 4);
    // Both wrap counters start at 1 (spec 2.8.1).
    this.nextAvail = start?.availIndex ?? 0;
    this.availWrap = start === undefined || start.availWrapCounter ? 1 : 0;
    this.nextUsed = start?.usedIndex ?? 0;
    this.usedWrap = start === undefined || start.usedWrapCounter ? 1 : 0;
    this.usedFlags = this.usedWrap === 1 ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    this.signalledPos = this.linear(this.nextUsed, this.usedWrap);
    this.writeDeviceEvent();
  }

  /**
   * The next descriptor slots to read and write, with both wrap counters.
   * @inheritDoc
   */
  position(): QueuePosition {
    return {
      availIndex: this.nextAvail,
      availWrapCounter: this.availWrap === 1,
      usedIndex: this.nextUsed,
      usedWrapCounter: this.usedWrap === 1,
    };
  }

  /**
   * Writes RING_EVENT_FLAGS_ENABLE, or RING_EVENT_FLAGS_DESC with the next slot under
   * VIRTIO_F_EVENT_IDX, into the device event suppression structure (spec 2.8.10).
   * @inheritDoc
   */
  enableNotification(): boolean {
    this.notificationsEnabled = true;
    if (this.detached) return false;
    return this.rearm();
  }

  /**
   * Writes RING_EVENT_FLAGS_DISABLE into the device event suppression structure (spec 2.8.10).
   * @inheritDoc
   */
  disableNotification(): void {
    this.notificationsEnabled = false;
    if (!this.detached) Atomics.store(this.deviceEvent, 1, RING_EVENT_FLAGS_DISABLE);
  }

  protected popChain(): Chain | null {
    if (!this.available() && !(this.notificationsEnabled && this.rearm())) return null;
    const chain = this.walk();
    const count = chain.ringSlots;
    if (count > this.size - this.slotsInFlight) return this.overrun(chain, count);
    this.slotsInFlight += count;
    let slot = this.nextAvail + count;
    if (slot >= this.size) {
      slot -= this.size;
      this.availWrap ^= 1;
    }
    this.nextAvail = slot;
    chain.rewind();
    return chain;
  }

  /**
   * Walks the descriptor list at the next available slot into a fresh chain,
   * with its buffer ID (from the last descriptor, spec 2.8.6), its fault, and in
   * `ringSlots` the list's length in slots, or size + 1 for a list that never
   * ends. A faulted list is still walked to its end, so that the ring stays in
   * step.
   *
   * An indirect descriptor must be a list on its own (spec 2.8.19). Its table is
   * read front to back, every entry in use; only VIRTQ_DESC_F_WRITE counts, the
   * other flags and the buffer ID are reserved and ignored (spec 2.8.7).
   *
   * One function for taking the chain, the list and the table on purpose: it is
   * too big for V8 to inline into pop(), so it is optimised on its own with the
   * per-buffer work (addBuffer) inlined, while pop() and addUsed() stay small
   * enough to inline into the device's loop. Split differently, which calls get
   * inlined varies from run to run, and the rate with it.
   */
  private walk(): Chain {
    const chain = this.takeChain(0);
    const desc32 = this.desc32;
    const desc16 = this.desc16;
    const size = this.size;
    let slot = this.nextAvail;
    let fault: ChainFault = NONE;
    for (let count = 1; count <= size; count++) {
      const flags = desc16[slot * 8 + 7] as number;
      if (fault !== NONE) {
        // A refused list is skipped to its end.
      } else if ((flags & VIRTQ_DESC_F_INDIRECT) === 0) {
        fault = chain.addBuffer(desc32[slot * 4] as number, desc32[slot * 4 + 1] as number, desc32[slot * 4 + 2] as number, (flags & VIRTQ_DESC_F_WRITE) !== 0);
      } else if (!this.indirect) {
        fault = INDIRECT_NOT_NEGOTIATED;
      } else if (count !== 1 || (flags & VIRTQ_DESC_F_NEXT) !== 0) {
        fault = INDIRECT_WITH_NEXT;
      } else {
        const len = desc32[slot * 4 + 2] as number;
        fault = this.indirectTable(desc32[slot * 4] as number, desc32[slot * 4 + 1] as number, len);
        const view = this.tableView;
        for (let at = this.tableBase, end = at + len; fault === NONE && at < end; at += 16) {
          const writable = (view.getUint16(at + 14, true) & VIRTQ_DESC_F_WRITE) !== 0;
          fault = chain.addBuffer(view.getUint32(at, true), view.getUint32(at + 4, true), view.getUint32(at + 8, true), writable);
        }
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) {
        chain.id = desc16[slot * 8 + 6] as number;
        if (fault !== NONE) chain.refuse(fault);
        chain.ringSlots = count;
        return chain;
      }
      if (++slot === size) slot = 0;
    }
    chain.ringSlots = size + 1;
    return chain;
  }

  /** A list that never ends, or more descriptors in flight than the ring holds: the ring is corrupt. */
  private overrun(chain: Chain, count: number): null {
    this.discard(chain);
    return this.corrupt(
      count > this.size ? 'a descriptor list runs round the whole ring without ending' : 'the driver made more descriptors available than the ring holds',
    );
  }

  protected rewind(chain: Chain): void {
    let slot = this.nextAvail - chain.ringSlots;
    if (slot < 0) {
      slot += this.size;
      this.availWrap ^= 1;
    }
    this.nextAvail = slot;
    this.slotsInFlight -= chain.ringSlots;
  }

  protected writeUsed(chain: Chain, len: number): void {
    const slot = this.nextUsed;
    const desc16 = this.desc16;
    this.desc32[slot * 4 + 2] = len;
    desc16[slot * 8 + 6] = chain.id;
    // VIRTQ_DESC_F_WRITE says whether the device wrote anything (spec 2.8.3).
    const flags = this.usedFlags | (len > 0 ? VIRTQ_DESC_F_WRITE : 0);
    if (this.batch++ === 0) {
      // The driver polls only the first slot of the batch, so the batch's other
      // descriptors can be plain stores: the first one's flags are stored last,
      // at publish, with a barrier, and make the whole batch visible at once.
      this.batchSlot = slot;
      this.batchFlags = flags;
    } else {
      desc16[slot * 8 + 7] = flags;
    }
    let next = slot + chain.ringSlots;
    if (next >= this.size) {
      next -= this.size;
      this.usedWrap ^= 1;
      this.usedFlags ^= VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;
    }
    this.nextUsed = next;
    this.slotsInFlight -= chain.ringSlots;
  }

  protected publish(): boolean {
    // A seq-cst store: the batch before it, and it before the event suppression load below.
    Atomics.store(this.desc16, this.batchSlot * 8 + 7, this.batchFlags);
    const flags = (Atomics.load(this.driverEvent, 1) as number) & 3;
    const old = this.signalledPos;
    const now = this.linear(this.nextUsed, this.usedWrap);
    const valid = this.signalledValid;
    this.signalledPos = now;
    this.signalledValid = true;
    if (flags === RING_EVENT_FLAGS_DISABLE) return false;
    // RING_EVENT_FLAGS_DESC counts only with VIRTIO_F_EVENT_IDX; the reserved value 3 reads as ENABLE.
    if (flags !== RING_EVENT_FLAGS_DESC || !this.eventIdx || !valid) return true;
    const offWrap = this.driverEvent[0] as number;
    const event = this.linear(offWrap & 0x7fff, offWrap >>> 15);
    // The driver wants an interrupt once the used descriptor at off_wrap is written (spec 2.8.10):
    // that is when its position lies in [old, now).
    const span = 2 * this.size;
    return (event - old + span) % span < (now - old + span) % span;
  }

  /** A ring position as one number modulo 2*size, so that positions in consecutive laps compare. */
  private linear(slot: number, wrap: number): number {
    return wrap === 1 ? slot : slot + this.size;
  }

  private available(): boolean {
    const flags = Atomics.load(this.desc16, this.nextAvail * 8 + 7) as number;
    return ((flags >>> 7) & 1) === this.availWrap && flags >>> 15 !== this.availWrap;
  }

  private writeDeviceEvent(): void {
    if (this.eventIdx) {
      this.deviceEvent[0] = this.nextAvail | (this.availWrap << 15);
      Atomics.store(this.deviceEvent, 1, RING_EVENT_FLAGS_DESC);
    } else {
      Atomics.store(this.deviceEvent, 1, RING_EVENT_FLAGS_ENABLE);
    }
  }

  /** Asks for a notification at the next slot, then re-checks it to close the race (spec 2.8.10). */
  private rearm(): boolean {
    this.writeDeviceEvent();
    return !this.broken && this.available();
  }
}
