import {
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
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
  /** Feature bits offered. Defaults to VERSION_1, RING_PACKED, INDIRECT_DESC, EVENT_IDX and IN_ORDER. */
  readonly features?: bigint;
}

/**
 * A real, minimal virtio device for testing transports and drivers: one queue;
 * each chain's device-readable bytes are copied into its device-writable part.
 * Configuration space (8 bytes): le32 `served` (chains completed, read-only) at
 * 0 and le32 `scratch` (read/write) at 4; writing `scratch` bumps the
 * configuration generation and raises a configuration change notification.
 */
export class LoopbackDevice implements VirtioDevice {
  readonly contractVersion = 1;
  readonly deviceType = LOOPBACK_DEVICE_ID;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 8;
  /** Faulted (malformed) chains seen since creation. */
  faults = 0;
  private readonly config = new DataView(new ArrayBuffer(8));
  private readonly delayMs: number;
  private host: DeviceHost | undefined;
  private queue: Virtqueue | undefined;
  private signal: AbortSignal | undefined;

  /** Creates the device. */
  constructor(options: LoopbackDeviceOptions = {}) {
    this.queueMaxSizes = [options.queueSize ?? 256];
    this.delayMs = options.delayMs ?? 0;
    this.deviceFeatures =
      options.features ??
      featureBit(VIRTIO_F_VERSION_1) |
        featureBit(VIRTIO_F_RING_PACKED) |
        featureBit(VIRTIO_F_INDIRECT_DESC) |
        featureBit(VIRTIO_F_EVENT_IDX) |
        featureBit(VIRTIO_F_IN_ORDER);
  }

  /** Chains completed since creation. */
  get served(): number {
    return this.config.getUint32(0, true);
  }

  attach(host: DeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(new Uint8Array(this.config.buffer, offset, data.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    // Only `scratch` is writable; writes that touch `served` are dropped whole.
    if (offset < 4) return;
    new Uint8Array(this.config.buffer, offset, data.length).set(data);
    this.host?.configChanged();
  }

  activate(context: ActivationContext): void {
    this.queue = context.queues.get(0);
    this.signal = context.signal;
  }

  reset(): void {
    this.queue = undefined;
    this.signal = undefined;
  }

  notify(index: number): void {
    const queue = this.queue;
    if (index !== 0 || queue === undefined) return;
    // At most one lap per notification, so a driver that keeps adding cannot starve the event loop.
    for (let i = 0; i < queue.size; i++) {
      const chain = queue.pop();
      if (chain === null) break;
      if (chain.fault !== ChainFault.NONE) {
        this.faults++;
        queue.addUsed(chain, 0);
      } else if (this.delayMs > 0) {
        this.completeLater(queue, chain);
        continue;
      } else {
        this.complete(queue, chain);
      }
    }
    queue.flush();
  }

  private completeLater(queue: Virtqueue, chain: DescriptorChain): void {
    const signal = this.signal;
    setTimeout(() => {
      // After a reset the queue is detached: addUsed and flush do nothing, so nothing reaches a new ring.
      if (signal?.aborted === true) return;
      this.complete(queue, chain);
      queue.flush();
    }, this.delayMs);
  }

  private complete(queue: Virtqueue, chain: DescriptorChain): void {
    const n = Math.min(chain.reader.remaining, chain.writer.remaining);
    const from = chain.reader.slices(n);
    for (const part of from) chain.writer.write(part);
    queue.addUsed(chain, n);
    this.config.setUint32(0, this.config.getUint32(0, true) + 1, true);
  }
}
