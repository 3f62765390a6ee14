import { VirtioCore, type GuestMemory, type QueueConfig, type VirtioDevice } from '@virtio-ts/virtqueue';
import { pollUntil } from '../poll.js';
import type { DriverTransport, InterruptCause } from '../transport.js';

/** Options for {@link CoreTransport}. */
export interface CoreTransportOptions {
  /** Reserved features the simulated transport carries (NOTIFICATION_DATA, RING_RESET). */
  readonly transportFeatures?: bigint;
}

/**
 * A transport with no registers: the driver talks straight to the
 * transport-neutral status machine. Useful for device tests that are not about
 * a transport; every real transport has its own backend.
 */
export class CoreTransport implements DriverTransport {
  /** 'core', for test titles. */
  readonly name = 'core';
  /** Guest memory, as the driver sees it. */
  readonly memory: GuestMemory;
  /** The status machine, exposed for assertions. */
  readonly core: VirtioCore;
  private handler: (cause: InterruptCause) => void = () => undefined;

  /** Wraps `device` in a {@link VirtioCore} over `memory`. */
  constructor(memory: GuestMemory, device: VirtioDevice, options: CoreTransportOptions = {}) {
    this.memory = memory;
    this.core = new VirtioCore({
      device,
      memory,
      interrupts: {
        queue: (index) => this.handler({ kind: 'queue', index }),
        config: () => this.handler({ kind: 'config' }),
      },
      ...(options.transportFeatures === undefined ? {} : { transportFeatures: options.transportFeatures }),
    });
  }

  /** The device's type. */
  deviceId(): number {
    return this.core.device.deviceType;
  }

  /** Status 0; a promise while the device is still finishing the reset (status reads 0 once it has). */
  reset(): void | Promise<void> {
    this.core.writeStatus(0);
    return this.core.resetPending;
  }

  /** Device status. */
  getStatus(): number {
    return this.core.status;
  }

  /** Device status, through the core's sequence rules. */
  setStatus(status: number): void {
    this.core.writeStatus(status);
  }

  /** The offered features, page by page. */
  readDeviceFeatures(): bigint {
    let features = 0n;
    for (let page = 0; page < 4; page++) features |= BigInt(this.core.deviceFeaturesPage(page)) << BigInt(32 * page);
    return features;
  }

  /** The accepted features, page by page. */
  writeDriverFeatures(features: bigint): void {
    for (let page = 0; page < 4; page++) this.core.writeDriverFeaturesPage(page, Number((features >> BigInt(32 * page)) & 0xffffffffn));
  }

  /** The device's queue count. */
  queueCount(): number {
    return this.core.queueCount;
  }

  /** The maximum size of queue `index`, 0 if there is none. */
  queueMaxSize(index: number): number {
    return this.core.queueSlot(index)?.maxSize ?? 0;
  }

  /** Configures and enables the queue; false if the core refused it. */
  setupQueue(index: number, config: QueueConfig): boolean {
    this.core.setQueueConfig(index, config);
    this.core.enableQueue(index);
    return this.core.queueSlot(index)?.enabled ?? false;
  }

  /** The queue reset; polled until the device has finished it, as a driver polls queue_reset (spec 2.6.1). */
  resetQueue(index: number): void | Promise<void> {
    this.core.resetQueue(index);
    return pollUntil(() => !this.core.queueResetPending(index), `queue ${index}: the device did not finish its reset`);
  }

  /** An available buffer notification, with notification data when given. */
  notify(index: number, data?: number): void {
    this.core.notify(index, data);
  }

  /** Configuration bytes, bounds-checked by the core. */
  readConfig(offset: number, length: number): Uint8Array {
    const data = new Uint8Array(length);
    this.core.readConfig(offset, data);
    return data;
  }

  /** Configuration bytes, bounds-checked by the core. */
  writeConfig(offset: number, data: Uint8Array): void {
    this.core.writeConfig(offset, data);
  }

  /** The configuration generation. */
  configGeneration(): number {
    return this.core.configGeneration;
  }

  /** The handler gets every interrupt, attributed to its queue. */
  onInterrupt(handler: (cause: InterruptCause) => void): void {
    this.handler = handler;
  }
}
