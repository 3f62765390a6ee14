import { RING_EVENT_FLAGS_DESC, type GuestMemory, type QueueConfig } from '@virtio-ts/virtqueue';
import { PackedRingDriver, SplitRingDriver, type GuestBuffer, type UsedElement } from '@virtio-ts/virtqueue/testing';
import { DriverError } from './errors.js';
import type { DriverEvent } from './events.js';
import type { GuestHeap } from './guest-heap.js';

/** What a {@link DriverQueue} needs from the driver that owns it. */
export interface QueueOwner {
  /** Guest memory the ring and buffers live in. */
  readonly memory: GuestMemory;
  /** Where buffers and indirect tables are allocated. */
  readonly heap: GuestHeap;
  /** Whether DRIVER_OK is set: no notification may be sent before (spec 3.1.1). */
  live(): boolean;
  /** Sends an available buffer notification through the transport. */
  notify(index: number, data: number | undefined): void;
  /** Records a trace event. */
  trace(event: DriverEvent): void;
  /** Records a device misbehaviour the driver detected. */
  deviceError(message: string): void;
}

/** How a {@link DriverQueue} was set up. */
export interface DriverQueueSetup {
  /** Queue index. */
  readonly index: number;
  /** Where the ring was placed. */
  readonly config: QueueConfig;
  /** VIRTIO_F_RING_PACKED is negotiated. */
  readonly packed: boolean;
  /** VIRTIO_F_EVENT_IDX is negotiated. */
  readonly eventIdx: boolean;
  /** VIRTIO_F_IN_ORDER is negotiated: the device must use buffers in the order they were made available. */
  readonly inOrder: boolean;
  /** VIRTIO_F_NOTIFICATION_DATA is negotiated. */
  readonly notificationData: boolean;
  /** Chains of more than one buffer go through an indirect table by default. */
  readonly indirect: boolean;
}

/** Options for {@link DriverQueue.add}. */
export interface ChainOptions {
  /**
   * Put the chain in an indirect table (true) or straight in the ring (false).
   * Defaults to the driver's policy: indirect when VIRTIO_F_INDIRECT_DESC is
   * negotiated, the driver was asked to use it, and the chain has several buffers.
   * Forcing true without the feature makes a malformed chain on purpose.
   */
  readonly indirect?: boolean;
}

/** The answer to {@link DriverQueue.request}. */
export interface RequestResult {
  /** The used length the device reported. */
  readonly len: number;
  /** A copy of the first `len` bytes of the device-writable part (spec 2.7.8: nothing beyond `len` is meaningful). */
  readonly data: Uint8Array;
}

interface Pending {
  readonly resolve: (used: UsedElement) => void;
  readonly reject: (error: Error) => void;
}

interface Waiter {
  readonly wake: () => void;
  readonly reject: (error: Error) => void;
}

/** A chain the device has not used yet. */
interface Outstanding {
  readonly buffers: readonly GuestBuffer[];
  readonly writable: number;
  /** Heap allocations to release once the chain is used: the indirect table, buffers request() made. */
  readonly owned: readonly number[];
  pending: Pending | undefined;
}

/**
 * One virtqueue as the driver sees it: chains go in with {@link add} and
 * {@link kick}, used buffers come back through {@link collect},
 * {@link waitUsed} or, for a whole request, {@link request}. The ring itself is
 * a SplitRingDriver or PackedRingDriver from `@virtio-ts/virtqueue/testing`,
 * exposed as {@link ring} for tests that write malformed descriptors.
 *
 * Used buffers are taken from the ring when the transport delivers an
 * interrupt (and whenever the caller asks), so a device that never interrupts
 * leaves {@link waitUsed} waiting: interrupts are part of what is tested.
 */
export class DriverQueue {
  /** Queue index. */
  readonly index: number;
  /** Queue size. */
  readonly size: number;
  /** True for the packed layout. */
  readonly packed: boolean;
  /** Where the ring lives in guest memory. */
  readonly config: QueueConfig;
  /** The guest side of the ring, for raw descriptor writes in malformed-chain tests. */
  readonly ring: SplitRingDriver | PackedRingDriver;
  /** Available buffer notifications sent. */
  notifications = 0;
  /** Kicks the device asked to be spared (notification suppression). */
  suppressedNotifications = 0;
  private readonly owner: QueueOwner;
  private readonly setup: DriverQueueSetup;
  private readonly outstanding = new Map<number, Outstanding>();
  /** IDs in the order they were made available, for checking VIRTIO_F_IN_ORDER. */
  private readonly order: number[] = [];
  private unclaimed: UsedElement[] = [];
  private waiters: Waiter[] = [];
  /** Split: the used index the driver has read up to. */
  private lastUsedIdx = 0;
  private kickDeferred = false;
  private failure: DriverError | undefined;

  /** Initialises the ring in guest memory; the driver enables it through the transport afterwards. */
  constructor(owner: QueueOwner, setup: DriverQueueSetup) {
    this.owner = owner;
    this.setup = setup;
    this.index = setup.index;
    this.size = setup.config.size;
    this.packed = setup.packed;
    this.config = setup.config;
    this.ring = setup.packed
      ? new PackedRingDriver(owner.memory, setup.config, { eventIdx: setup.eventIdx })
      : new SplitRingDriver(owner.memory, setup.config, { eventIdx: setup.eventIdx });
    this.armUsedEvent();
  }

  /** Chains made available and not used yet. */
  get inFlight(): number {
    return this.outstanding.size;
  }

  /** Descriptor slots free in the ring. */
  get free(): number {
    return this.ring.free;
  }

  /** The guest buffers of every chain in flight (for checking that nothing writes them after a reset). */
  inFlightBuffers(): GuestBuffer[] {
    return [...this.outstanding.values()].flatMap((o) => o.buffers);
  }

  /**
   * Writes a chain of guest buffers (device-readable ones first, spec 2.7.4.2)
   * and stages it; {@link kick} makes it available. Returns its ID: the head
   * descriptor index (split) or buffer ID (packed).
   */
  add(buffers: readonly GuestBuffer[], options: ChainOptions = {}): number {
    this.throwIfFailed();
    return this.addChain(buffers, options, []);
  }

  /**
   * Makes staged chains available (spec 2.7.13, 2.8.21) and sends an available
   * buffer notification unless the device suppressed it (spec 2.7.10, 2.8.10),
   * with the notification data when negotiated (spec 2.9). Before DRIVER_OK
   * the notification is held back and sent once the device is live (spec 3.1.1).
   * Returns whether a notification was sent.
   */
  kick(): boolean {
    this.ring.publish();
    if (!this.owner.live()) {
      this.kickDeferred = true;
      return false;
    }
    this.kickDeferred = false;
    if (!this.ring.kickNeeded()) {
      this.suppressedNotifications++;
      this.owner.trace({ kind: 'notify-suppressed', index: this.index });
      return false;
    }
    const data = this.setup.notificationData ? this.notificationData() : undefined;
    this.notifications++;
    this.owner.notify(this.index, data);
    return true;
  }

  /** Takes every used buffer the device has published, except those {@link request} is waiting for. */
  collect(): UsedElement[] {
    this.drain();
    const used = this.unclaimed;
    this.unclaimed = [];
    return used;
  }

  /**
   * Resolves with the used buffers (as {@link collect}) once there is at least
   * one, waiting for the device's used buffer notification if need be.
   * Rejects if the device or queue is reset, or the device needs a reset.
   */
  waitUsed(): Promise<UsedElement[]> {
    const ready = this.collect();
    if (ready.length > 0) return Promise.resolve(ready);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<UsedElement[]>((resolve, reject) => {
      this.waiters.push({ wake: () => resolve(this.collect()), reject });
    });
  }

  /**
   * One request: copies `out` into fresh device-readable buffers, adds
   * device-writable buffers of `inLens` bytes, kicks, and resolves once the
   * device used the chain, with the used length and the bytes written.
   */
  request(out: readonly Uint8Array[], inLens: readonly number[]): Promise<RequestResult> {
    try {
      this.throwIfFailed();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const { heap, memory } = this.owner;
    const owned: number[] = [];
    const buffers: GuestBuffer[] = [];
    try {
      for (const bytes of out) {
        const addr = heap.alloc(bytes.length);
        owned.push(addr);
        memory.write(addr, bytes);
        buffers.push({ addr, len: bytes.length, writable: false });
      }
      for (const len of inLens) {
        const addr = heap.alloc(len);
        owned.push(addr);
        buffers.push({ addr, len, writable: true });
      }
    } catch (error) {
      for (const addr of owned) heap.release(addr);
      return Promise.reject(error as Error);
    }
    const writableParts = buffers.filter((b) => b.writable);
    return new Promise<RequestResult>((resolve, reject) => {
      // The bytes are copied out before the buffers go back to the heap, in drain().
      const pending: Pending = {
        resolve: (used) => resolve({ len: used.len, data: this.readWritten(writableParts, used.len) }),
        reject,
      };
      try {
        this.addChain(buffers, {}, owned, pending);
      } catch (error) {
        for (const addr of owned) heap.release(addr);
        reject(error as Error);
        return;
      }
      this.kick();
    });
  }

  /**
   * Takes used elements from the ring, checks them, releases what the driver
   * allocated for them, and hands them to their request or to {@link collect}.
   * Called on every interrupt for this queue.
   */
  drain(): void {
    if (this.failure !== undefined) return;
    let took = false;
    for (;;) {
      let used = this.takeUsed();
      if (used === null) {
        if (this.failure !== undefined) break;
        // Re-arm, then look again: the device may have used a buffer in between (spec 2.7.10).
        this.armUsedEvent();
        used = this.takeUsed();
        if (used === null) break;
      }
      took = this.complete(used) || took;
    }
    // The first waiter takes everything; the others keep waiting for the next used buffer.
    if (took && this.unclaimed.length > 0) this.waiters.shift()?.wake();
  }

  /** Sends a notification held back until DRIVER_OK. */
  flushDeferredKick(): void {
    if (this.kickDeferred) this.kick();
  }

  /** Fails every request and waiter with `error`, and refuses new work until the queue is set up again. */
  fail(error: DriverError): void {
    this.failure = error;
    for (const o of this.outstanding.values()) {
      o.pending?.reject(error);
      o.pending = undefined;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  /** The queue was reset (with its device or alone): fails everything and returns its allocations. */
  discard(error: DriverError): void {
    this.fail(error);
    for (const o of this.outstanding.values()) for (const addr of o.owned) this.owner.heap.release(addr);
    this.outstanding.clear();
    this.order.length = 0;
    this.unclaimed = [];
  }

  private addChain(buffers: readonly GuestBuffer[], options: ChainOptions, owned: number[], pending?: Pending): number {
    if (buffers.length === 0) throw new DriverError('usage', `queue ${this.index}: a chain needs at least one buffer`);
    const indirect = options.indirect ?? (this.setup.indirect && buffers.length > 1);
    const needed = indirect ? 1 : buffers.length;
    if (needed > this.ring.free) {
      throw new DriverError(
        'queue',
        `queue ${this.index} is full: ${needed} descriptors needed, ${this.ring.free} free; collect used buffers first`,
      );
    }
    const { heap } = this.owner;
    let table: number | undefined;
    if (indirect) {
      table = heap.alloc(16 * buffers.length, 16);
      owned.push(table);
    }
    const id = this.ring.add(buffers, table === undefined ? {} : { indirectTable: table });
    this.outstanding.set(id, {
      buffers,
      writable: buffers.reduce((sum, b) => sum + (b.writable ? b.len : 0), 0),
      owned,
      pending,
    });
    if (this.setup.inOrder) this.order.push(id);
    this.owner.trace({ kind: 'available', index: this.index, id, descriptors: buffers.length, indirect });
    return id;
  }

  private takeUsed(): UsedElement | null {
    try {
      const used = this.ring.takeUsed();
      if (used !== null && !this.packed) this.lastUsedIdx = (this.lastUsedIdx + 1) & 0xffff;
      return used;
    } catch (error) {
      // The packed ring cannot account for an ID it never handed out: the ring is unusable.
      const failure = new DriverError('device', `queue ${this.index}: ${(error as Error).message}; reset the device`);
      this.owner.deviceError(failure.message);
      this.fail(failure);
      return null;
    }
  }

  /** Returns whether the element went to {@link collect} rather than to a request. */
  private complete(used: UsedElement): boolean {
    const o = this.outstanding.get(used.id);
    if (o === undefined) {
      this.owner.deviceError(`queue ${this.index}: the device used ID ${used.id}, which is not in flight`);
      return false;
    }
    if (this.setup.inOrder) {
      const at = this.order.indexOf(used.id);
      if (at > 0) {
        this.owner.deviceError(
          `queue ${this.index}: VIRTIO_F_IN_ORDER negotiated but ID ${used.id} was used before ID ${this.order[0]} (spec 2.7.9, 2.8.8; batched in-order completions are not supported by this driver)`,
        );
      }
      this.order.splice(at, 1);
    }
    // spec 2.7.8.2: the device writes at least `len` bytes, so `len` can never exceed the writable part.
    if (used.len > o.writable) {
      this.owner.deviceError(`queue ${this.index}: ID ${used.id} used with len ${used.len}, beyond its ${o.writable} writable bytes`);
    }
    this.outstanding.delete(used.id);
    this.owner.trace({ kind: 'used', index: this.index, id: used.id, len: used.len });
    const clamped = { id: used.id, len: Math.min(used.len, o.writable) };
    o.pending?.resolve(clamped);
    for (const addr of o.owned) this.owner.heap.release(addr);
    if (o.pending !== undefined) return false;
    this.unclaimed.push(clamped);
    return true;
  }

  /**
   * Asks for an interrupt on the next used buffer: with VIRTIO_F_EVENT_IDX by
   * used_event (split, spec 2.7.7) or a descriptor event at the next used
   * position (packed, spec 2.8.10); without it, interrupts stay enabled.
   */
  private armUsedEvent(): void {
    if (!this.setup.eventIdx) return;
    if (this.ring instanceof SplitRingDriver) this.ring.setUsedEvent(this.lastUsedIdx);
    else this.ring.setDriverEvent(RING_EVENT_FLAGS_DESC, this.ring.usedOffWrap);
  }

  /**
   * The le32 notification value (spec 2.9): the queue index in bits 0-15, then
   * next_off and next_wrap. Split: the 16-bit available index. Packed: the next
   * descriptor slot and the driver's wrap counter.
   */
  private notificationData(): number {
    if (this.ring instanceof SplitRingDriver) return (this.index | (this.ring.availIndex << 16)) >>> 0;
    const { slot, wrap } = this.ring.availPosition;
    return (this.index | (slot << 16) | (wrap << 31)) >>> 0;
  }

  private readWritten(parts: readonly GuestBuffer[], len: number): Uint8Array {
    const data = new Uint8Array(len);
    let at = 0;
    for (const part of parts) {
      if (at >= len) break;
      const n = Math.min(part.len, len - at);
      this.owner.memory.read(part.addr, data.subarray(at, at + n));
      at += n;
    }
    return data;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
