import type { GuestMemory, GuestMemoryRegion } from '../memory/guest-memory.js';
import { Chain, descriptorAddress, type DescriptorChain } from './chain.js';
import { ChainFault } from './fault.js';
import type { QueueHooks, QueuePosition, Virtqueue } from './virtqueue.js';

/** Options every layout shares, derived from the negotiated features. */
export interface QueueLayoutOptions {
  /** The queue's index, for messages. */
  readonly index: number;
  /** VIRTIO_F_EVENT_IDX negotiated: used_event / avail_event suppression (spec 2.7.7, 2.7.10). */
  readonly eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated: indirect tables allowed (spec 2.7.5.3). */
  readonly indirect: boolean;
  /** VIRTIO_F_IN_ORDER negotiated: buffers used in the order made available (spec 2.8.23). */
  readonly inOrder: boolean;
}

/**
 * The layout-independent half of a virtqueue: the chain pool, in-order
 * completion, batching and the detached/broken states. Subclasses read and write
 * the rings.
 */
export abstract class VirtqueueBase implements Virtqueue {
  /** @inheritDoc */
  readonly index: number;
  /** @inheritDoc */
  readonly size: number;
  abstract readonly packed: boolean;
  /** @inheritDoc */
  inFlight = 0;
  /** @inheritDoc */
  broken = false;
  /** @inheritDoc */
  detached = false;
  /** @inheritDoc */
  notificationData = -1;
  protected readonly memory: GuestMemory;
  protected readonly hooks: QueueHooks;
  protected readonly eventIdx: boolean;
  protected readonly indirect: boolean;
  protected readonly inOrder: boolean;
  /** Largest indirect table, in descriptors. QEMU's limit: Linux sizes tables by the request, not the queue. */
  protected readonly maxIndirect: number;
  protected notificationsEnabled = true;
  /** Used entries written since the last flush. */
  protected batch = 0;
  protected lastPopped: Chain | null = null;
  /** The indirect table found by {@link indirectTable}: a view and the table's offset in it. */
  protected tableView: DataView;
  protected tableBase = 0;
  private readonly pool: Chain[] = [];
  private popSeq = 0;
  private completeSeq = 0;
  private held: (Chain | undefined)[] = [];
  private heldLen: Uint32Array | undefined;
  /** Holds an indirect table that crosses from one region into the next, copied out. */
  private tableBounce: DataView;

  protected constructor(memory: GuestMemory, size: number, hooks: QueueHooks, options: QueueLayoutOptions) {
    this.memory = memory;
    this.size = size;
    this.hooks = hooks;
    this.index = options.index;
    this.eventIdx = options.eventIdx;
    this.indirect = options.indirect;
    this.inOrder = options.inOrder;
    this.maxIndirect = Math.max(size, 1024);
    this.tableBounce = new DataView(new ArrayBuffer(0));
    this.tableView = this.tableBounce;
  }

  /** @inheritDoc */
  pop(): DescriptorChain | null {
    if (this.broken || this.detached) return null;
    const chain = this.popChain();
    this.lastPopped = chain;
    return chain;
  }

  /**
   * Throws if `chain` is not the latest one popped: giving back any other would desynchronise the
   * ring cursor.
   * @inheritDoc
   */
  undoPop(chain: DescriptorChain): void {
    if (chain !== this.lastPopped || this.lastPopped === null) misuse('undoPop: only the chain returned by the latest pop() can be given back');
    const c = this.lastPopped;
    this.lastPopped = null;
    if (this.detached) return;
    this.rewind(c);
    this.popSeq--;
    this.release(c);
  }

  /**
   * Throws if the chain did not come from this queue or was already completed (a device bug, not a
   * guest fault). After detach() the chain is only recycled.
   * @inheritDoc
   */
  addUsed(chain: DescriptorChain, len: number): void {
    const c = chain as Chain;
    if (c.owner !== this || !c.inFlight) misuse('addUsed: the chain was not popped from this queue, or was already completed');
    if (c === this.lastPopped) this.lastPopped = null;
    const written = len > 0 ? Math.min(Math.trunc(len), c.writableLength) : 0;
    if (this.detached) this.release(c);
    else if (this.inOrder) this.completeInOrder(c, written);
    else {
      this.writeUsed(c, written);
      this.release(c);
    }
  }

  /** @inheritDoc */
  flush(): boolean {
    if (this.detached || this.batch === 0) return false;
    const notify = this.publish();
    this.batch = 0;
    if (notify) this.hooks.interrupt();
    return notify;
  }

  /**
   * Stored as an unsigned 32-bit value.
   * @inheritDoc
   */
  setNotificationData(data: number): void {
    this.notificationData = data >>> 0;
  }

  /**
   * Also drops completions held back for VIRTIO_F_IN_ORDER.
   * @inheritDoc
   */
  detach(): void {
    this.detached = true;
    this.lastPopped = null;
    this.held = [];
  }

  abstract enableNotification(): boolean;
  abstract disableNotification(): void;
  abstract position(): QueuePosition;

  /** Reads and validates the next chain, or returns null. */
  protected abstract popChain(): Chain | null;
  /** Moves the ring cursor back over `chain`, the latest one popped. */
  protected abstract rewind(chain: Chain): void;
  /** Writes one used entry (staged: not yet visible to the driver). */
  protected abstract writeUsed(chain: Chain, len: number): void;
  /** Makes staged entries visible; returns whether the driver wants an interrupt. */
  protected abstract publish(): boolean;

  /** A pooled chain, cleared and marked in flight. */
  protected takeChain(id: number): Chain {
    const chain = this.pool.pop() ?? new Chain(this, this.memory);
    chain.begin(id, this.popSeq++);
    this.inFlight++;
    return chain;
  }

  /** Gives back a chain taken by {@link takeChain} that will not be handed out. */
  protected discard(chain: Chain): void {
    this.popSeq--;
    this.release(chain);
  }

  /**
   * Checks the indirect table a descriptor names (spec 2.7.5.3, 2.8.7): a
   * non-zero multiple of 16 bytes, at most {@link maxIndirect} entries, wholly in
   * guest memory. On success {@link tableView} and {@link tableBase} locate it; a
   * table that crosses into an adjacent region is copied out first.
   */
  protected indirectTable(lo: number, hi: number, len: number): ChainFault {
    if (len === 0 || len % 16 !== 0 || len / 16 > this.maxIndirect) return ChainFault.INDIRECT_TABLE_SIZE;
    const addr = descriptorAddress(lo, hi);
    const memory = this.memory;
    const index = memory.regionIndexOf(addr, len, 'read');
    if (index >= 0) {
      const region = memory.regions[index] as GuestMemoryRegion;
      this.tableView = region.view;
      this.tableBase = addr - region.guestAddress;
      return ChainFault.NONE;
    }
    if (!memory.checkRange(addr, len, 'read')) return ChainFault.INDIRECT_TABLE_OUTSIDE_MEMORY;
    if (this.tableBounce.byteLength < len) this.tableBounce = new DataView(new ArrayBuffer(16 * this.maxIndirect));
    memory.read(addr, new Uint8Array(this.tableBounce.buffer, 0, len));
    this.tableView = this.tableBounce;
    this.tableBase = 0;
    return ChainFault.NONE;
  }

  /** The ring is corrupt: stop serving it and tell the transport. */
  protected corrupt(reason: string): null {
    if (!this.broken) {
      this.broken = true;
      this.hooks.corrupt(`queue ${this.index}: ${reason}`);
    }
    return null;
  }

  private release(c: Chain): void {
    c.inFlight = false;
    this.inFlight--;
    this.pool.push(c);
  }

  /** VIRTIO_F_IN_ORDER: a chain is used only once every chain popped before it has been (spec 2.7.9, 2.8.8). */
  private completeInOrder(c: Chain, len: number): void {
    if (c.seq !== this.completeSeq) {
      this.hold(c, len);
      return;
    }
    this.writeUsed(c, len);
    this.completeSeq = c.seq + 1;
    this.release(c);
    this.releaseHeld();
  }

  private hold(c: Chain, len: number): void {
    if (this.heldLen === undefined) {
      this.heldLen = new Uint32Array(this.size);
      this.held = new Array<Chain | undefined>(this.size).fill(undefined);
    }
    const slot = c.seq % this.size;
    this.held[slot] = c;
    this.heldLen[slot] = len;
  }

  private releaseHeld(): void {
    const heldLen = this.heldLen;
    if (heldLen === undefined) return;
    for (;;) {
      const slot = this.completeSeq % this.size;
      const c = this.held[slot];
      if (c === undefined || c.seq !== this.completeSeq) return;
      this.held[slot] = undefined;
      this.writeUsed(c, heldLen[slot] as number);
      this.completeSeq++;
      this.release(c);
    }
  }
}

/** A device-side programming error (not a guest one): the API was used against its contract. */
function misuse(message: string): never {
  throw new Error(message);
}
