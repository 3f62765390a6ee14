import {
  DeviceId,
  VIRTIO_DEVICE_CONTRACT_VERSION,
  featureBit,
  hasFeature,
  type ActivationContext,
  type DeviceHost,
  type Virtqueue,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import type { BlockBackend } from './backend.js';
import { BLK_CONFIG_SIZE, BlkConfigOffset } from './config.js';
import {
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_GEOMETRY,
  VIRTIO_BLK_F_LIFETIME,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SECURE_ERASE,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
} from './constants.js';
import { Disk } from './disk.js';
import { resolveOptions, type ResolvedBlkOptions, type VirtioBlkOptions } from './options.js';
import { RequestQueue, type RequestQueueHost } from './request-queue.js';

/** What {@link VirtioBlk.snapshot} saves. */
export interface BlkSnapshot {
  /** The `writeback` field. */
  readonly writeback: boolean;
  /** Negotiated features in hex, or null before negotiation. */
  readonly features: string | null;
}

/**
 * A virtio block device (spec 5.2) over a {@link BlockBackend}. Implements
 * VirtioDevice, so any transport carries it. Requests run concurrently and
 * complete out of order; each request queue is served independently.
 */
export class VirtioBlk implements VirtioDevice {
  /** The device contract version this device implements. */
  readonly contractVersion = VIRTIO_DEVICE_CONTRACT_VERSION;
  /** Device ID 2, a block device (spec 5). */
  readonly deviceType = DeviceId.BLOCK;
  /** The features offered, from the options (see the package README's feature table). */
  readonly deviceFeatures: bigint;
  /** One maximum size per request queue (`queues` of them, each `queueSize`). */
  readonly queueMaxSizes: readonly number[];
  /** Size of struct virtio_blk_config (spec 5.2.4). */
  readonly configSize = BLK_CONFIG_SIZE;
  /** Where the data lives. */
  readonly backend: BlockBackend;
  private readonly disk: Disk;
  private host: DeviceHost | undefined;
  private readonly queues = new Map<number, RequestQueue>();
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly queueHost: RequestQueueHost = {
    started: () => {
      this.inFlight++;
    },
    finished: () => {
      if (--this.inFlight === 0) this.wakeIdle();
    },
    needsReset: (reason) => this.host?.needsReset(reason),
  };

  /** Creates the device; throws a RangeError naming any invalid option. */
  constructor(options: VirtioBlkOptions) {
    const o = resolveOptions(options);
    this.backend = o.backend;
    this.disk = new Disk(o);
    this.queueMaxSizes = new Array<number>(o.queues).fill(o.queueSize);
    this.deviceFeatures = offeredFeatures(o);
  }

  /** Current capacity in 512-byte sectors. */
  get capacity(): number {
    return this.disk.capacity;
  }

  /** The cache mode: true for write-back, false for write-through (the `writeback` field). */
  get writeback(): boolean {
    return this.disk.config.writeback;
  }

  /** Keeps the transport's channel back, for configuration change notifications and DEVICE_NEEDS_RESET. */
  attach(host: DeviceHost): void {
    this.host = host;
  }

  /** Enables the commands the driver accepted (spec 5.2.3); any subset of the offer is accepted. */
  acceptFeatures(features: bigint): boolean {
    this.disk.negotiate(features);
    return true;
  }

  /** Copies configuration space bytes (spec 5.2.4) at `offset` into `data`. */
  readConfig(offset: number, data: Uint8Array): void {
    data.set(this.disk.config.bytes.subarray(offset, offset + data.length));
  }

  /** Only `writeback` is writable (spec 5.2.5), to 0 or 1; other bytes and values are ignored. */
  writeConfig(offset: number, data: Uint8Array): void {
    const at = BlkConfigOffset.writeback - offset;
    if (at < 0 || at >= data.length || !this.disk.writebackWritable()) return;
    const value = data[at];
    if (value === 0 || value === 1) this.disk.config.writeback = value === 1;
  }

  /** DRIVER_OK: serves every enabled queue, starting with requests already made available. */
  activate(context: ActivationContext): void {
    if (this.disk.features === undefined) {
      // A legacy driver never set FEATURES_OK. spec 5.2.5.3: without CONFIG_WCE the cache mode follows FLUSH.
      this.disk.negotiate(context.features);
      if (!hasFeature(context.features, VIRTIO_BLK_F_CONFIG_WCE)) this.disk.config.writeback = this.disk.flushEnabled;
    }
    for (const [index, queue] of context.queues) this.serve(index, queue);
  }

  /**
   * Forgets the driver. Requests in flight are dropped: their completions
   * never reach a ring or a status byte. Backend operations already issued
   * cannot be recalled (a read may still be landing in its guest buffer), so
   * while any runs this returns a promise that settles once all are over, and
   * the transport keeps device status non-zero until then (spec 2.4): after
   * the reset completes, nothing the old driver asked for writes guest memory.
   */
  reset(): void | Promise<void> {
    const stopping = [...this.queues.values()].map((q) => q.stop()).filter((p) => p !== undefined);
    this.queues.clear();
    this.disk.reset();
    return stopping.length === 0 ? undefined : Promise.all(stopping).then(() => undefined);
  }

  /** An available buffer notification: starts the queue's available requests. */
  notify(index: number): void {
    this.queues.get(index)?.drain();
  }

  /** VIRTIO_F_RING_RESET (spec 2.6.1): like {@link reset} for one queue; a promise while its backend operations finish. */
  resetQueue(index: number): void | Promise<void> {
    const queue = this.queues.get(index);
    this.queues.delete(index);
    return queue?.stop();
  }

  /** VIRTIO_F_RING_RESET: serves queue `index` again after its reset (spec 2.6.1). */
  enableQueue(index: number, queue: Virtqueue): void {
    this.serve(index, queue);
  }

  /** The state a reset would lose: the cache mode and the negotiated features. Taken while no request is in flight. */
  snapshot(): BlkSnapshot {
    return { writeback: this.disk.config.writeback, features: this.disk.features?.toString(16) ?? null };
  }

  /** Restores a {@link BlkSnapshot} into a reset device, before activation. Throws on a malformed state. */
  restore(state: unknown): void {
    const s = state as Partial<BlkSnapshot> | null;
    if (typeof s !== 'object' || s === null || typeof s.writeback !== 'boolean' || (s.features !== null && (typeof s.features !== 'string' || !/^[0-9a-f]{1,32}$/.test(s.features)))) {
      throw new Error('virtio-blk: malformed snapshot');
    }
    if (s.features !== null) this.disk.negotiate(BigInt(`0x${s.features}`));
    this.disk.config.writeback = s.writeback;
  }

  /**
   * Resizes the backend to `bytes` (when given), then updates `capacity` and
   * sends a configuration change notification (spec 5.2.6.3) if it changed.
   * Without an argument, picks up a size change made to the backend directly.
   */
  async resize(bytes?: number): Promise<void> {
    if (bytes !== undefined) {
      if (this.backend.resize === undefined) throw new Error('this backend cannot be resized');
      await this.backend.resize(bytes);
    }
    const sectors = this.disk.backendSectors();
    if (sectors === this.disk.config.capacity) return;
    this.disk.config.capacity = sectors;
    this.host?.configChanged();
  }

  /** Resolves once no backend operation is in flight (for a VMM that must quiesce before touching guest memory). */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private serve(index: number, queue: Virtqueue): void {
    const served = new RequestQueue(queue, this.disk, this.queueHost);
    void this.queues.get(index)?.stop();
    this.queues.set(index, served);
    // Requests made available before the queue was served are taken now.
    served.drain();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

function offeredFeatures(o: ResolvedBlkOptions): bigint {
  const offer = (bit: number, on: boolean): bigint => (on ? featureBit(bit) : 0n);
  return (
    o.ringFeatures |
    offer(VIRTIO_BLK_F_SIZE_MAX, o.sizeMax !== undefined) |
    offer(VIRTIO_BLK_F_SEG_MAX, true) |
    offer(VIRTIO_BLK_F_GEOMETRY, o.geometry !== undefined) |
    offer(VIRTIO_BLK_F_RO, o.readOnly) |
    offer(VIRTIO_BLK_F_BLK_SIZE, true) |
    offer(VIRTIO_BLK_F_FLUSH, o.flush) |
    offer(VIRTIO_BLK_F_TOPOLOGY, o.topology !== undefined) |
    offer(VIRTIO_BLK_F_CONFIG_WCE, o.configWce) |
    offer(VIRTIO_BLK_F_MQ, o.queues > 1) |
    offer(VIRTIO_BLK_F_DISCARD, o.discard !== undefined) |
    offer(VIRTIO_BLK_F_WRITE_ZEROES, o.writeZeroes !== undefined) |
    offer(VIRTIO_BLK_F_LIFETIME, o.lifetime !== undefined) |
    offer(VIRTIO_BLK_F_SECURE_ERASE, o.secureErase !== undefined)
  );
}
