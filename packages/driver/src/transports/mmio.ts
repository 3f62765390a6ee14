import type { GuestMemory, QueueConfig } from '@virtio-ts/virtqueue';
import { andThen, pollUntil } from '../poll.js';
import type { DriverTransport, InterruptCause } from '../transport.js';

/**
 * A virtio-mmio register block as the guest sees it: 8/16/32-bit reads and
 * writes at offsets from the base. `@virtio-ts/transport-mmio`'s MmioTransport
 * has this shape; so would a block reached through real MMIO.
 */
export interface MmioRegisterBlock {
  /** Reads `size` bytes at `offset`, little-endian. */
  read(offset: number, size: number): number;
  /** Writes the low `size` bytes of `value` at `offset`. */
  write(offset: number, size: number, value: number): void;
  /**
   * After a write, a promise while the vCPU that made it stays held: the
   * device is finishing work the guest expects done when the write returns (a
   * reset, which Linux's virtio_mmio never polls for). The driver waits for it
   * as a held vCPU would. `@virtio-ts/transport-mmio`'s MmioTransport reports
   * it; a block without it finishes every write before returning.
   */
  readonly pendingCompletion?: Promise<void> | undefined;
}

/** Options for {@link MmioDriverTransport}. */
export interface MmioDriverTransportOptions {
  /**
   * Number of queues. virtio-mmio has no register for it (the device type
   * defines it), so by default the driver counts queues until the first whose
   * QueueSizeMax is 0.
   */
  readonly queueCount?: number;
}

/*
 * The version 2 register offsets (spec 4.2.2), written out here from the spec
 * rather than imported: the driver is an independent implementation of the
 * other side, so a wrong offset on either side fails the tests instead of
 * agreeing with itself.
 */
const MagicValue = 0x000;
const Version = 0x004;
const DeviceID = 0x008;
const DeviceFeatures = 0x010;
const DeviceFeaturesSel = 0x014;
const DriverFeatures = 0x020;
const DriverFeaturesSel = 0x024;
const QueueSel = 0x030;
const QueueSizeMax = 0x034;
const QueueSize = 0x038;
const QueueReady = 0x044;
const QueueNotify = 0x050;
const InterruptStatus = 0x060;
const InterruptACK = 0x064;
const Status = 0x070;
const QueueDescLow = 0x080;
const QueueDriverLow = 0x090;
const QueueDeviceLow = 0x0a0;
const QueueReset = 0x0c0;
const ConfigGeneration = 0x0fc;
const Config = 0x100;

const MAGIC = 0x74726976;
const USED_BUFFER = 1;
const CONFIG_CHANGE = 2;
const FEATURE_PAGES = 4;

/**
 * The guest driver's side of virtio-mmio version 2 (spec 4.2.3), as Linux's
 * virtio_mmio driver does it: register accesses only, 32-bit for control
 * registers and naturally aligned 8/16/32-bit for the configuration space.
 *
 * Wire the device's interrupt line to {@link interruptLine}. Like a CPU, the
 * driver takes the interrupt after the current register access has finished
 * (in a microtask): it reads InterruptStatus, acknowledges what it read, and
 * reports each cause to the handler (spec 4.2.3.4).
 */
export class MmioDriverTransport implements DriverTransport {
  /** 'mmio', for test titles. */
  readonly name = 'mmio';
  /** Guest memory, as the driver sees it. */
  readonly memory: GuestMemory;
  private readonly registers: MmioRegisterBlock;
  private readonly queues: number | undefined;
  private handler: (cause: InterruptCause) => void = () => undefined;
  private lineAsserted = false;
  private serviceScheduled = false;

  /** Probes the block: throws unless MagicValue and Version say virtio-mmio version 2 (spec 4.2.3.1.1). */
  constructor(registers: MmioRegisterBlock, memory: GuestMemory, options: MmioDriverTransportOptions = {}) {
    this.registers = registers;
    this.memory = memory;
    this.queues = options.queueCount;
    const magic = registers.read(MagicValue, 4);
    if (magic !== MAGIC) throw new Error(`not a virtio-mmio device: MagicValue is 0x${magic.toString(16)}; check the base address`);
    const version = registers.read(Version, 4);
    if (version !== 2) throw new Error(`virtio-mmio version ${version} is not supported by this driver; configure the device as version 2`);
  }

  /**
   * The device's interrupt line changed level. On assertion the driver
   * services the interrupt once the current access has returned, and again
   * for as long as the line stays asserted, as with a level-triggered line.
   */
  interruptLine(level: boolean): void {
    this.lineAsserted = level;
    if (level && !this.serviceScheduled) {
      this.serviceScheduled = true;
      queueMicrotask(() => this.service());
    }
  }

  /** DeviceID. */
  deviceId(): number {
    return this.read(DeviceID);
  }

  /**
   * Status 0, as Linux's vm_reset writes it: with no read-back loop, so the
   * reset must be complete when the write returns, which a VMM ensures by
   * holding the vCPU ({@link MmioRegisterBlock.pendingCompletion}).
   */
  reset(): void | Promise<void> {
    this.write(Status, 0);
    return andThen(this.registers.pendingCompletion, () => {
      const status = this.read(Status);
      if (status !== 0) throw new Error(`device status is 0x${status.toString(16)} after reset, not 0; the VMM must hold the vCPU until pendingCompletion settles`);
    });
  }

  /** Status. */
  getStatus(): number {
    return this.read(Status);
  }

  /** Status. */
  setStatus(status: number): void {
    this.write(Status, status);
  }

  /** DeviceFeatures, page by page through DeviceFeaturesSel. */
  readDeviceFeatures(): bigint {
    let features = 0n;
    for (let page = 0; page < FEATURE_PAGES; page++) {
      this.write(DeviceFeaturesSel, page);
      features |= BigInt(this.read(DeviceFeatures)) << BigInt(32 * page);
    }
    return features;
  }

  /** DriverFeatures, page by page through DriverFeaturesSel. */
  writeDriverFeatures(features: bigint): void {
    for (let page = 0; page < FEATURE_PAGES; page++) {
      this.write(DriverFeaturesSel, page);
      this.write(DriverFeatures, Number((features >> BigInt(32 * page)) & 0xffffffffn));
    }
  }

  /** The `queueCount` option, else the queues before the first whose QueueSizeMax reads 0. */
  queueCount(): number {
    if (this.queues !== undefined) return this.queues;
    let count = 0;
    while (count < 0x10000 && this.queueMaxSize(count) !== 0) count++;
    return count;
  }

  /** QueueSizeMax of queue `index`. */
  queueMaxSize(index: number): number {
    this.write(QueueSel, index);
    return this.read(QueueSizeMax);
  }

  /** The queue configuration sequence of spec 4.2.3.2. */
  setupQueue(index: number, config: QueueConfig): boolean {
    this.write(QueueSel, index);
    if (this.read(QueueReady) !== 0) return false;
    this.write(QueueSize, config.size);
    this.writeAddress(QueueDescLow, config.descAddr);
    this.writeAddress(QueueDriverLow, config.driverAddr);
    this.writeAddress(QueueDeviceLow, config.deviceAddr);
    this.write(QueueReady, 1);
    return this.read(QueueReady) === 1;
  }

  /** Spec 4.2.2.2: write 1 to QueueReset; the reset is complete once it reads back 0 (polled, as for PCI's queue_reset). */
  resetQueue(index: number): void | Promise<void> {
    this.write(QueueSel, index);
    this.write(QueueReset, 1);
    return pollUntil(() => this.read(QueueReset) === 0, `queue ${index}: QueueReset did not read 0`);
  }

  /** Spec 4.2.3.3: the queue index, or the notification data (index in bits 0-15) when negotiated. */
  notify(index: number, data?: number): void {
    this.write(QueueNotify, data ?? index);
  }

  /** The configuration space from 0x100, in the widest naturally aligned accesses that fit (spec 4.2.2.2). */
  readConfig(offset: number, length: number): Uint8Array {
    const data = new Uint8Array(length);
    const view = new DataView(data.buffer);
    for (let at = 0; at < length; ) {
      const size = accessSize(offset + at, length - at);
      const value = this.registers.read(Config + offset + at, size);
      if (size === 4) view.setUint32(at, value, true);
      else if (size === 2) view.setUint16(at, value, true);
      else view.setUint8(at, value);
      at += size;
    }
    return data;
  }

  /** The configuration space from 0x100, in the widest naturally aligned accesses that fit. */
  writeConfig(offset: number, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let at = 0; at < data.length; ) {
      const size = accessSize(offset + at, data.length - at);
      const value = size === 4 ? view.getUint32(at, true) : size === 2 ? view.getUint16(at, true) : view.getUint8(at);
      this.registers.write(Config + offset + at, size, value);
      at += size;
    }
  }

  /** ConfigGeneration. */
  configGeneration(): number {
    return this.read(ConfigGeneration);
  }

  /** The handler gets each cause InterruptStatus reports; queue causes name no queue, as one line serves them all. */
  onInterrupt(handler: (cause: InterruptCause) => void): void {
    this.handler = handler;
  }

  /** Spec 4.2.3.4: read InterruptStatus, acknowledge the events read, then handle them. */
  private service(): void {
    this.serviceScheduled = false;
    if (!this.lineAsserted) return;
    const status = this.read(InterruptStatus);
    if (status === 0) return;
    this.write(InterruptACK, status & (USED_BUFFER | CONFIG_CHANGE));
    if ((status & CONFIG_CHANGE) !== 0) this.handler({ kind: 'config' });
    // One line for every queue: the driver learns that some queue has used buffers, not which.
    if ((status & USED_BUFFER) !== 0) this.handler({ kind: 'queue', index: undefined });
    if (this.lineAsserted) this.interruptLine(true);
  }

  private writeAddress(lowRegister: number, address: number): void {
    this.write(lowRegister, address >>> 0);
    this.write(lowRegister + 4, Math.floor(address / 2 ** 32));
  }

  private read(offset: number): number {
    return this.registers.read(offset, 4);
  }

  private write(offset: number, value: number): void {
    this.registers.write(offset, 4, value);
  }
}

/** The widest access of 4, 2 or 1 bytes that is aligned at `offset` and fits in `remaining`. */
function accessSize(offset: number, remaining: number): 1 | 2 | 4 {
  if (remaining >= 4 && offset % 4 === 0) return 4;
  if (remaining >= 2 && offset % 2 === 0) return 2;
  return 1;
}
