import { LoopbackDevice, MmioDriverTransport, type DriverTransport, type InterruptCause, type LoopbackDeviceOptions } from '@virtio-ts/driver';
import {
  DeviceStatus,
  GuestMemory,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  featureBit,
  hasFeature,
  type ActivationContext,
  type DeviceHost,
  type QueueConfig,
  type Virtqueue,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { MmioTransport, type MmioTransportOptions } from '../src/index.js';

/** Guest RAM used by the tests: 1 MiB at 0, a hole, then 1 MiB at 4 MiB. */
export function testMemory(): GuestMemory {
  return new GuestMemory([
    { guestAddress: 0, buffer: new ArrayBuffer(1 << 20) },
    { guestAddress: 4 << 20, buffer: new ArrayBuffer(1 << 20) },
  ]);
}

/** Where the tests place the register block and which interrupt line it uses. */
export const BASE = 0xd000_0000;
/** See {@link BASE}. */
export const IRQ = 5;

/** A device behind MMIO, with the guest side wired to it: the driver backend and the interrupt line. */
export interface Rig {
  readonly memory: GuestMemory;
  readonly transport: MmioTransport;
  readonly driver: MmioDriverTransport;
  /** Every level the line was driven to, in order. */
  readonly line: boolean[];
  /** Every interrupt cause the driver saw, in order. */
  readonly interrupts: InterruptCause[];
}

/** Puts `device` behind a version 2 MmioTransport and connects a driver backend to its registers and line. */
export function connect(device: VirtioDevice = new LoopbackDevice(), options: Partial<MmioTransportOptions> = {}): Rig {
  const memory = options.memory ?? testMemory();
  const line: boolean[] = [];
  const interrupts: InterruptCause[] = [];
  const transport = new MmioTransport({
    device,
    memory,
    baseAddress: BASE,
    irq: {
      number: IRQ,
      set: (level) => {
        line.push(level);
        driver.interruptLine(level);
      },
    },
    ...options,
  });
  // The line only moves once the guest has programmed the device, after `driver` exists.
  const driver = new MmioDriverTransport(transport, memory);
  driver.onInterrupt((cause) => interrupts.push(cause));
  return { memory, transport, driver, line, interrupts };
}

/** A guest-side ring on the queue the driver set up. */
export type RingDriver = SplitRingDriver | PackedRingDriver;

/**
 * The device initialisation sequence of spec 3.1.1 through a DriverTransport:
 * reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK and its check,
 * queue setup, DRIVER_OK. Returns the negotiated features and the rings.
 */
export function initialise(driver: DriverTransport, wanted: bigint, queueSize = 16): { features: bigint; rings: RingDriver[] } {
  driver.reset();
  driver.setStatus(DeviceStatus.ACKNOWLEDGE);
  driver.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
  const features = driver.readDeviceFeatures() & wanted;
  driver.writeDriverFeatures(features);
  const featuresOk = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK;
  driver.setStatus(featuresOk);
  if ((driver.getStatus() & DeviceStatus.FEATURES_OK) === 0) throw new Error('device refused FEATURES_OK');
  const packed = hasFeature(features, VIRTIO_F_RING_PACKED);
  const alloc = new GuestAllocator(0x1000, 1 << 20, { seed: 11 });
  const rings: RingDriver[] = [];
  for (let index = 0; index < driver.queueCount(); index++) {
    const size = Math.min(queueSize, driver.queueMaxSize(index));
    const config: QueueConfig = packed ? placePackedRing(alloc, size) : placeSplitRing(alloc, size);
    const ring = packed ? new PackedRingDriver(driver.memory, config) : new SplitRingDriver(driver.memory, config);
    if (!driver.setupQueue(index, config)) throw new Error(`queue ${index} did not become ready`);
    rings.push(ring);
  }
  driver.setStatus(featuresOk | DeviceStatus.DRIVER_OK);
  return { features, rings };
}

/** Lets the guest take pending interrupts: runs every queued microtask. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The loopback device with VIRTIO_F_RING_RESET: a queue reset stops the inner
 * device, and re-enabling the queue activates it again on the new ring.
 */
export class ResettableLoopback implements VirtioDevice {
  readonly inner: LoopbackDevice;
  readonly deviceType: number;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize: number;
  private context: ActivationContext | undefined;

  constructor(options: LoopbackDeviceOptions = {}) {
    this.inner = new LoopbackDevice(options);
    this.deviceType = this.inner.deviceType;
    this.deviceFeatures = this.inner.deviceFeatures | featureBit(VIRTIO_F_RING_RESET);
    this.queueMaxSizes = this.inner.queueMaxSizes;
    this.configSize = this.inner.configSize;
  }

  attach(host: DeviceHost): void {
    this.inner.attach(host);
  }
  readConfig(offset: number, data: Uint8Array): void {
    this.inner.readConfig(offset, data);
  }
  writeConfig(offset: number, data: Uint8Array): void {
    this.inner.writeConfig(offset, data);
  }
  activate(context: ActivationContext): void {
    this.context = context;
    this.inner.activate(context);
  }
  reset(): void {
    this.context = undefined;
    this.inner.reset();
  }
  notify(index: number): void {
    this.inner.notify(index);
  }
  resetQueue(): void {
    this.inner.reset();
  }
  enableQueue(index: number, queue: Virtqueue): void {
    if (this.context !== undefined) this.inner.activate({ ...this.context, queues: new Map([[index, queue]]) });
  }
}
