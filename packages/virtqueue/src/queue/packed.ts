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
    this.signalledPos = this.linear(this.nextUsed, this.usedWrap);
    this.writeDeviceEvent();
  }

  position(): QueuePosition {
    return {
      availIndex: this.nextAvail,
      availWrapCounter: this.availWrap === 1,
      usedIndex: this.nextUsed,
      usedWrapCounter: this.usedWrap === 1,
    };
  }

  enableNotification(): boolean {
    this.notificationsEnabled = true;
    if (this.detached) return false;
    return this.rearm();
  }

  disableNotification(): void {
    this.notificationsEnabled = false;
    if (!this.detached) Atomics.store(this.deviceEvent, 1, RING_EVENT_FLAGS_DISABLE);
  }

  protected popChain(): Chain | null {
    if (!this.available()) {
      if (!this.notificationsEnabled || !this.rearm()) return null;
    }
    const desc32 = this.desc32;
    const desc16 = this.desc16;
    const size = this.size;
    const chain = this.takeChain(0);
    let slot = this.nextAvail;
    let wrap = this.availWrap;
    let count = 0;
    let fault: ChainFault = ChainFault.NONE;
    for (;;) {
      const flags = desc16[slot * 8 + 7] as number;
      count++;
      if (fault === ChainFault.NONE) {
        const lo = desc32[slot * 4] as number;
        const hi = desc32[slot * 4 + 1] as number;
        const len = desc32[slot * 4 + 2] as number;
        if ((flags & VIRTQ_DESC_F_INDIRECT) === 0) {
          fault = chain.addBuffer(lo, hi, len, (flags & VIRTQ_DESC_F_WRITE) !== 0);
        } else if (count !== 1 || (flags & VIRTQ_DESC_F_NEXT) !== 0) {
          // An indirect descriptor is a whole list on its own (spec 2.8.19).
          fault = ChainFault.INDIRECT_WITH_NEXT;
        } else {
          fault = this.walkIndirect(chain, lo, hi, len);
        }
      }
      const last = slot;
      if (++slot === size) {
        slot = 0;
        wrap ^= 1;
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) {
        // The buffer ID lives in the last descriptor of the list (spec 2.8.6).
        chain.id = desc16[last * 8 + 6] as number;
        break;
      }
      if (count === size) {
        this.discard(chain);
        return this.corrupt('a descriptor list runs round the whole ring without ending');
      }
    }
    if (this.slotsInFlight + count > size) {
      this.discard(chain);
      return this.corrupt('the driver made more descriptors available than the ring holds');
    }
    this.slotsInFlight += count;
    this.nextAvail = slot;
    this.availWrap = wrap;
    chain.ringSlots = count;
    if (fault !== ChainFault.NONE) chain.refuse(fault);
    chain.rewind();
    return chain;
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
    this.desc32[slot * 4 + 2] = len;
    this.desc16[slot * 8 + 6] = chain.id;
    // A used descriptor has AVAIL and USED both equal to the Device Ring Wrap Counter (spec 2.8.1);
    // VIRTQ_DESC_F_WRITE says whether the device wrote anything (spec 2.8.3).
    const flags = (this.usedWrap === 1 ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0) | (len > 0 ? VIRTQ_DESC_F_WRITE : 0);
    if (this.batch === 0) {
      // The driver polls only the first slot of the batch, so the batch's other
      // descriptors can be plain stores: the first one's flags are stored last,
      // at publish, with a barrier, and make the whole batch visible at once.
      this.batchSlot = slot;
      this.batchFlags = flags;
    } else {
      this.desc16[slot * 8 + 7] = flags;
    }
    let next = slot + chain.ringSlots;
    if (next >= this.size) {
      next -= this.size;
      this.usedWrap ^= 1;
    }
    this.nextUsed = next;
    this.slotsInFlight -= chain.ringSlots;
    this.batch++;
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
    return this.available();
  }

  /**
   * Packed indirect tables are read front to back, every entry in use; only
   * VIRTQ_DESC_F_WRITE counts, the other flags and the buffer ID are reserved and
   * ignored (spec 2.8.7).
   */
  private walkIndirect(chain: Chain, lo: number, hi: number, len: number): ChainFault {
    if (!this.indirect) return ChainFault.INDIRECT_NOT_NEGOTIATED;
    const tableFault = this.indirectTable(lo, hi, len);
    if (tableFault !== ChainFault.NONE) return tableFault;
    const view = this.tableView;
    for (let at = this.tableBase, end = this.tableBase + len; at < end; at += 16) {
      const writable = (view.getUint16(at + 14, true) & VIRTQ_DESC_F_WRITE) !== 0;
      const fault = chain.addBuffer(view.getUint32(at, true), view.getUint32(at + 4, true), view.getUint32(at + 8, true), writable);
      if (fault !== ChainFault.NONE) return fault;
    }
    return ChainFault.NONE;
  }
}
