import {
  QUEUE_FEATURES,
  VIRTIO_DEVICE_CONTRACT_VERSION,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_RESET,
  ChainFault,
  featureBit,
  type ActivationContext,
  type DescriptorChain,
  type DeviceHost,
  type Virtqueue,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';

/**
 * Device ID of the loopback device. The spec assigns no ID for test devices; 63
 * is unassigned and is the largest that still fits PCI's modern device-ID range
 * (0x1040 + 63 = 0x107f, spec 4.1.2).
 */
export const LOOPBACK_DEVICE_ID = 63;

/** Options for {@link LoopbackDevice}. */
export interface LoopbackDeviceOptions {
  /** Maximum queue size. Defaults to 256. */
  readonly queueSize?: number;
  /** Complete requests after this many milliseconds instead of at once (to keep requests in flight). */
  readonly delayMs?: number;
  /** Feature bits offered. Defaults to every ring feature the virtqueue implements (QUEUE_FEATURES), NOTIFICATION_DATA and RING_RESET. */
  readonly features?: bigint;
}

/**
 * A real, minimal virtio device for testing transports and drivers: one queue;
 * each chain's device-readable bytes are copied into its device-writable part.
 * Configuration space (8 bytes): le32 `served` (chains completed, read-only) at
 * 0 and le32 `scratch` (read/write) at 4; writing `scratch` bumps the
 * configuration generation and raises a configuration change notification.
 *
 * Requests can be kept in flight ({@link holdRequests}, or `delayMs`); a
 * completion that comes after a device or queue reset is dropped, never
 * written to guest memory (spec 2.4, 2.6.1).
 */
export class LoopbackDevice implements VirtioDevice {
  /** The VirtioDevice contract version implemented. */
  readonly contractVersion = VIRTIO_DEVICE_CONTRACT_VERSION;
  /** {@link LOOPBACK_DEVICE_ID}. */
  readonly deviceType = LOOPBACK_DEVICE_ID;
  /** The ring features (or the `features` option) and VIRTIO_F_VERSION_1. */
  readonly deviceFeatures: bigint;
  /** One queue, of the `queueSize` option (default 256). */
  readonly queueMaxSizes: readonly number[];
  /** `served` (le32, read-only) and `scratch` (le32, writable). */
  readonly configSize = 8;
  /** Faulted (malformed) chains seen since creation. */
  faults = 0;
  /** The notification data of the latest notification (VIRTIO_F_NOTIFICATION_DATA, spec 2.9), or -1. */
  lastNotificationData = -1;
  /** While true, good chains are kept in flight until {@link releaseHeld}. */
  holdRequests = false;
  private held: { queue: Virtqueue; chain: DescriptorChain; signal: AbortSignal | undefined }[] = [];
  private readonly config = new DataView(new ArrayBuffer(8));
  private readonly delayMs: number;
  private host: DeviceHost | undefined;
  private queue: Virtqueue | undefined;
  private signal: AbortSignal | undefined;

  /** Creates the device. */
  constructor(options: LoopbackDeviceOptions = {}) {
    this.queueMaxSizes = [options.queueSize ?? 256];
    this.delayMs = options.delayMs ?? 0;
    this.deviceFeatures = options.features ?? (QUEUE_FEATURES | featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET));
  }

  /** Chains completed since creation. */
  get served(): number {
    return this.config.getUint32(0, true);
  }

  /** Keeps the host, for configuration change notifications. */
  attach(host: DeviceHost): void {
    this.host = host;
  }

  /** Copies configuration bytes (the core has bounds-checked the range). */
  readConfig(offset: number, data: Uint8Array): void {
    data.set(new Uint8Array(this.config.buffer, offset, data.length));
  }

  /** Writes `scratch` and raises a configuration change notification. */
  writeConfig(offset: number, data: Uint8Array): void {
    // Only `scratch` is writable; writes that touch `served` are dropped whole.
    if (offset < 4) return;
    new Uint8Array(this.config.buffer, offset, data.length).set(data);
    this.host?.configChanged();
  }

  /** Starts serving queue 0. */
  activate(context: ActivationContext): void {
    this.queue = context.queues.get(0);
    this.signal = context.signal;
  }

  /** Forgets the queue; held chains of it are dropped when released. */
  reset(): void {
    this.queue = undefined;
    this.signal = undefined;
  }

  /** Forgets queue 0. */
  resetQueue(index: number): void {
    if (index === 0) this.queue = undefined;
  }

  /** Serves queue 0 again, in its new rings. */
  enableQueue(index: number, queue: Virtqueue): void {
    if (index === 0) this.queue = queue;
  }

  /**
   * Completes the chains held by {@link holdRequests}, except those whose device
   * or queue was reset since (they are dropped). Returns how many completed.
   */
  releaseHeld(): number {
    const held = this.held;
    this.held = [];
    let completed = 0;
    for (const { queue, chain, signal } of held) {
      if (this.finish(queue, chain, signal)) completed++;
    }
    return completed;
  }

  /** Serves queue 0: each good chain's readable bytes copied into its writable ones (held with {@link holdRequests}). */
  notify(index: number): void {
    const queue = this.queue;
    if (index !== 0 || queue === undefined) return;
    this.lastNotificationData = queue.notificationData;
    // At most one lap per notification, so a driver that keeps adding cannot starve the event loop;
    // the pop after a full lap finds the ring empty and re-arms notifications (avail_event).
    for (let i = 0; i <= queue.size; i++) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain.fault !== ChainFault.NONE) {
        this.faults++;
        queue.addUsed(chain, 0);
      } else if (this.holdRequests) {
        this.held.push({ queue, chain, signal: this.signal });
      } else if (this.delayMs > 0) {
        const signal = this.signal;
        setTimeout(() => this.finish(queue, chain, signal), this.delayMs);
      } else {
        this.complete(queue, chain);
      }
    }
    queue.flush();
  }

  /** A late completion: dropped if the device or the queue was reset meanwhile, since the buffers are no longer ours. */
  private finish(queue: Virtqueue, chain: DescriptorChain, signal: AbortSignal | undefined): boolean {
    if (signal?.aborted === true || queue.detached) return false;
    this.complete(queue, chain);
    queue.flush();
    return true;
  }

  private complete(queue: Virtqueue, chain: DescriptorChain): void {
    const n = Math.min(chain.reader.remaining, chain.writer.remaining);
    const from = chain.reader.slices(n);
    for (const part of from) chain.writer.write(part);
    queue.addUsed(chain, n);
    this.config.setUint32(0, this.config.getUint32(0, true) + 1, true);
  }
}
