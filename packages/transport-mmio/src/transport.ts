import {
  DeviceStatus,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_RESET,
  VirtioCore,
  featureBit,
  hasFeature,
  legacySplitRingLayout,
  type GuestMemory,
  type QueueConfig,
  type SharedMemoryMapping,
  type VirtioCoreSnapshot,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import type { MmioDeviceDescription } from './description.js';
import {
  INTERRUPT_CONFIG_CHANGE,
  INTERRUPT_USED_BUFFER,
  MMIO_MAGIC_VALUE,
  MmioRegister as Reg,
  READ,
  WRITE,
  registerAccess,
  registerBlockSize,
  type MmioVersion,
} from './registers.js';

/** The device's interrupt line, supplied by the VMM (spec 4.2.3.4: one dedicated, level-triggered signal). */
export interface MmioInterruptLine {
  /** The line's number as the guest knows it (GSI on x86, SPI on Arm); goes into the description. */
  readonly number: number;
  /** Drives the line: true asserts, false deasserts. Called only when the level changes. */
  set(level: boolean): void;
}

/** Options for {@link MmioTransport}. */
export interface MmioTransportOptions {
  /** The device to carry. */
  readonly device: VirtioDevice;
  /** Guest memory the device's queues live in. */
  readonly memory: GuestMemory;
  /** Guest-physical address of the register block. */
  readonly baseAddress: number;
  /** The interrupt line. */
  readonly irq: MmioInterruptLine;
  /** Register layout: 2 (spec 4.2.2, the default) or the legacy 1 (spec 4.2.4), chosen per device. */
  readonly version?: MmioVersion;
  /** VendorID register value. Defaults to 0. */
  readonly vendorId?: number;
  /**
   * Size of the register block in bytes: a power of two holding the 0x100 bytes
   * of control registers and the configuration space. Defaults to {@link registerBlockSize}.
   */
  readonly size?: number;
  /**
   * Carry VIRTIO_F_NOTIFICATION_DATA (version 2 only; the device must offer it
   * too). Defaults to true. Turn it off when notifications go through an
   * ioeventfd matched on the queue index, which notification data would defeat.
   */
  readonly notificationData?: boolean;
  /** Diagnostics sink for guest errors. */
  readonly log?: (message: string) => void;
}

/** Register accesses that broke the transport's rules, ignored and counted (never thrown). */
export interface MmioViolations {
  /** Control registers accessed other than 32 bits wide and aligned, or configuration accesses not 8/16/32 bits and aligned (spec 4.2.2.2). */
  width: number;
  /** Offsets with no register in this version's layout, or beyond the register block. */
  offset: number;
  /** Writes to read-only registers and reads of write-only ones (spec 4.2.2.2). */
  direction: number;
  /** Values a register does not accept: status above 0xff, undefined InterruptACK bits, QueueReady other than 0 or 1, ... */
  value: number;
}

/** A saved transport: its registers and the status machine's snapshot (which includes the device's). */
export interface MmioTransportSnapshot {
  /** The register layout version it was taken from. */
  readonly version: MmioVersion;
  /** The status machine, queues and device. */
  readonly core: VirtioCoreSnapshot;
  /** InterruptStatus: events not yet acknowledged. */
  readonly interruptStatus: number;
  /** DeviceFeaturesSel. */
  readonly deviceFeaturesSel: number;
  /** DriverFeaturesSel. */
  readonly driverFeaturesSel: number;
  /** QueueSel. */
  readonly queueSel: number;
  /** SHMSel. */
  readonly shmSel: number;
  /** Version 2: the address words written to each queue, by queue index. */
  readonly addressWords: readonly (readonly [number, readonly number[]])[];
  /** Legacy: GuestPageSize. */
  readonly guestPageSize: number;
  /** Legacy: QueueAlign of each queue. */
  readonly queueAlign: readonly number[];
  /** Legacy: QueuePFN of each queue. */
  readonly queuePfn: readonly number[];
}

const WORD = 2 ** 32;
const LEGACY_DEFAULT_QUEUE_ALIGN = 4096;
const INTERRUPT_BITS = INTERRUPT_USED_BUFFER | INTERRUPT_CONFIG_CHANGE;

/** The queue address register pairs of version 2, as indices into a queue's address words. */
const enum Area {
  Desc = 0,
  Driver = 1,
  Device = 2,
}

/**
 * A virtio device behind the virtio-mmio transport (spec 4.2). The VMM
 * dispatches the guest's accesses to the register block to {@link read} and
 * {@link write} with the offset from {@link MmioDeviceDescription.baseAddress};
 * the transport drives the interrupt line while InterruptStatus is non-zero.
 *
 * Every access is validated: one the spec forbids (wrong width, unknown offset,
 * wrong direction, a bad value) is ignored, reads as 0 and is counted in
 * {@link violations}; nothing a guest does throws.
 */
export class MmioTransport {
  /** The status machine wrapping the device. */
  readonly core: VirtioCore;
  /** The register layout version. */
  readonly version: MmioVersion;
  /** Where the device sits, for the VMM to describe it to the guest. */
  readonly description: MmioDeviceDescription;
  /** Guest-physical address of QueueNotify, for an ioeventfd. */
  readonly notifyAddress: number;
  /** Accesses ignored so far. The status machine counts its own in `core.violations`. */
  readonly violations: MmioViolations = { width: 0, offset: 0, direction: 0, value: 0 };
  private readonly irq: MmioInterruptLine;
  private readonly vendorId: number;
  private readonly size: number;
  private readonly access: Uint8Array;
  private readonly configBytes = new Uint8Array(4);
  private readonly configView = new DataView(this.configBytes.buffer);
  /** Views of `configBytes` indexed by access size, so configuration accesses allocate nothing. */
  private readonly configAccessBytes = [undefined, this.configBytes.subarray(0, 1), this.configBytes.subarray(0, 2), undefined, this.configBytes];
  private interruptStatusValue = 0;
  private level = false;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private shmSel = 0;
  private notificationDataNegotiated = false;
  /** Version 2: the 32-bit halves the driver wrote to each queue's address registers, by queue. */
  private readonly addressWords = new Map<number, Uint32Array>();
  /** Legacy: GuestPageSize; survives device reset, as the driver writes it once before the first reset. */
  private guestPageSize = 0;
  /** Legacy: QueueAlign of each queue. */
  private readonly queueAlign: Uint32Array;
  /** Legacy: QueuePFN of each queue. */
  private readonly queuePfn: Uint32Array;

  /** Wraps `options.device`; throws on options a VMM must not pass (a programming error, not a guest one). */
  constructor(options: MmioTransportOptions) {
    const { device, baseAddress, irq } = options;
    this.version = options.version ?? 2;
    if (this.version !== 1 && this.version !== 2) throw new RangeError(`virtio-mmio version ${String(this.version)} is not 1 or 2`);
    const needed = Reg.Config + device.configSize;
    this.size = options.size ?? registerBlockSize(device.configSize);
    if (!Number.isSafeInteger(this.size) || (this.size & (this.size - 1)) !== 0 || this.size < needed) {
      throw new RangeError(`register block size ${this.size} must be a power of two of at least 0x${needed.toString(16)} bytes`);
    }
    if (!Number.isSafeInteger(baseAddress) || baseAddress < 0 || baseAddress % 4 !== 0) {
      throw new RangeError(`base address ${baseAddress} must be a 4-aligned guest-physical address`);
    }
    if (!Number.isInteger(irq.number) || irq.number < 0) throw new RangeError(`interrupt number ${irq.number} is not a non-negative integer`);
    this.irq = irq;
    this.vendorId = (options.vendorId ?? 0) >>> 0;
    this.access = registerAccess(this.version);
    const legacy = this.version === 1;
    const transportFeatures = legacy
      ? 0n
      : featureBit(VIRTIO_F_RING_RESET) | (options.notificationData === false ? 0n : featureBit(VIRTIO_F_NOTIFICATION_DATA));
    this.core = new VirtioCore({
      device,
      memory: options.memory,
      interrupts: {
        queue: () => this.raise(INTERRUPT_USED_BUFFER),
        config: () => this.raise(INTERRUPT_CONFIG_CHANGE),
      },
      transportFeatures,
      ...(options.log === undefined ? {} : { log: options.log }),
    });
    this.core.legacy = legacy;
    const queues = legacy ? device.queueMaxSizes.length : 0;
    this.queueAlign = new Uint32Array(queues).fill(LEGACY_DEFAULT_QUEUE_ALIGN);
    this.queuePfn = new Uint32Array(queues);
    this.description = { baseAddress, size: this.size, interrupt: irq.number, deviceType: device.deviceType };
    this.notifyAddress = baseAddress + Reg.QueueNotify;
  }

  /** Whether the interrupt line is asserted (exactly when InterruptStatus is non-zero). */
  get interruptLevel(): boolean {
    return this.level;
  }

  /**
   * After a {@link write}: a promise while the device is finishing a reset
   * that write started, else undefined (nearly always). Linux's virtio_mmio
   * writes Status 0 and carries on without reading it back, so the reset must
   * be complete when the write returns: the VMM does not resume the vCPU that
   * made the write until the promise settles (spec 2.4: a device whose
   * in-flight I/O is still touching guest memory finishes its reset only
   * then). Status keeps its old value until it does.
   */
  get pendingCompletion(): Promise<void> | undefined {
    return this.core.resetPending;
  }

  /**
   * The guest reads `size` bytes at `offset` from the base. Returns the value
   * (little-endian, spec 4.2.2), or 0 for an access the spec forbids.
   */
  read(offset: number, size: number): number {
    if (offset >= Reg.Config) return this.readConfig(offset, size);
    if (!this.controlAccess(offset, size, READ)) return 0;
    switch (offset) {
      case Reg.MagicValue:
        return MMIO_MAGIC_VALUE;
      case Reg.Version:
        return this.version;
      case Reg.DeviceID:
        return this.core.device.deviceType;
      case Reg.VendorID:
        return this.vendorId;
      case Reg.DeviceFeatures:
        return this.core.deviceFeaturesPage(this.deviceFeaturesSel);
      case Reg.QueueSizeMax:
        return this.core.queueSlot(this.queueSel)?.maxSize ?? 0;
      case Reg.QueuePFN:
        return this.queueInUse(this.queueSel) ? (this.queuePfn[this.queueSel] ?? 0) : 0;
      case Reg.QueueReady:
        return this.queueInUse(this.queueSel) ? 1 : 0;
      case Reg.InterruptStatus:
        return this.interruptStatusValue;
      case Reg.Status:
        return this.core.status;
      // Spec 4.2.2: an absent region reads as length -1 and base 0xffffffffffffffff.
      case Reg.SHMLenLow:
        return low(this.sharedMemory()?.size);
      case Reg.SHMLenHigh:
        return high(this.sharedMemory()?.size);
      case Reg.SHMBaseLow:
        return low(this.sharedMemory()?.guestAddress);
      case Reg.SHMBaseHigh:
        return high(this.sharedMemory()?.guestAddress);
      case Reg.QueueReset:
        // 1 while the device is still finishing the queue's reset (spec 4.2.2.1).
        return this.core.queueResetPending(this.queueSel) ? 1 : 0;
      case Reg.ConfigGeneration:
        return this.core.configGeneration;
      default:
        return 0;
    }
  }

  /** The guest writes the low `size` bytes of `value` at `offset` from the base. Forbidden writes are ignored. */
  write(offset: number, size: number, value: number): void {
    if (offset >= Reg.Config) {
      this.writeConfig(offset, size, value);
      return;
    }
    if (!this.controlAccess(offset, size, WRITE)) return;
    value >>>= 0;
    switch (offset) {
      case Reg.DeviceFeaturesSel:
        this.deviceFeaturesSel = value;
        break;
      case Reg.DriverFeatures:
        this.writeDriverFeatures(value);
        break;
      case Reg.DriverFeaturesSel:
        this.driverFeaturesSel = value;
        break;
      case Reg.GuestPageSize:
        if (value === 0 || (value & (value - 1)) !== 0) this.violations.value++;
        else this.guestPageSize = value;
        break;
      case Reg.QueueSel:
        this.queueSel = value;
        break;
      case Reg.QueueSize:
        this.core.setQueueConfig(this.queueSel, { size: value });
        break;
      case Reg.QueueAlign:
        this.writeQueueAlign(value);
        break;
      case Reg.QueuePFN:
        this.writeQueuePfn(value);
        break;
      case Reg.QueueReady:
        this.writeQueueReady(value);
        break;
      case Reg.QueueNotify:
        this.queueNotify(value);
        break;
      case Reg.InterruptACK:
        if ((value & ~INTERRUPT_BITS) !== 0) this.violations.value++;
        this.interruptStatusValue &= ~value;
        this.updateLine();
        break;
      case Reg.Status:
        this.writeStatus(value);
        break;
      case Reg.QueueDescLow:
      case Reg.QueueDescHigh:
        this.writeQueueAddress(Area.Desc, offset === Reg.QueueDescHigh, value);
        break;
      case Reg.QueueDriverLow:
      case Reg.QueueDriverHigh:
        this.writeQueueAddress(Area.Driver, offset === Reg.QueueDriverHigh, value);
        break;
      case Reg.QueueDeviceLow:
      case Reg.QueueDeviceHigh:
        this.writeQueueAddress(Area.Device, offset === Reg.QueueDeviceHigh, value);
        break;
      case Reg.SHMSel:
        this.shmSel = value;
        break;
      case Reg.QueueReset:
        this.writeQueueReset(value);
        break;
    }
  }

  /**
   * The VMM placed shared memory region `mapping.id` (spec 2.10) in guest
   * memory; the SHM registers report it from now on. Throws if the device does
   * not declare the region with that size.
   */
  mapSharedMemory(mapping: SharedMemoryMapping): void {
    const declared = this.core.device.sharedMemoryRegions?.find((region) => region.id === mapping.id);
    if (declared === undefined) throw new RangeError(`the device declares no shared memory region ${mapping.id}`);
    if (declared.size !== mapping.size || mapping.bytes.length !== mapping.size) {
      throw new RangeError(`shared memory region ${mapping.id} is ${declared.size} bytes; the mapping must be too`);
    }
    if (!Number.isSafeInteger(mapping.guestAddress) || mapping.guestAddress < 0) {
      throw new RangeError(`shared memory region ${mapping.id}: ${mapping.guestAddress} is not a guest-physical address`);
    }
    this.core.sharedMemory.set(mapping.id, mapping);
  }

  /**
   * Saves the transport with its device, for pause/resume or migration. Throws
   * while requests are in flight (see `VirtioCore.snapshot`).
   */
  snapshot(): MmioTransportSnapshot {
    return {
      version: this.version,
      core: this.core.snapshot(),
      interruptStatus: this.interruptStatusValue,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      queueSel: this.queueSel,
      shmSel: this.shmSel,
      addressWords: [...this.addressWords].map(([index, words]) => [index, [...words]] as const),
      guestPageSize: this.guestPageSize,
      queueAlign: [...this.queueAlign],
      queuePfn: [...this.queuePfn],
    };
  }

  /**
   * Restores a {@link snapshot} taken from a transport of the same version
   * carrying the same kind of device. The device resumes where it was, and the
   * line is driven again if events were pending. Throws on a snapshot of another version.
   */
  restore(snapshot: MmioTransportSnapshot): void {
    if (snapshot.version !== this.version) throw new RangeError(`snapshot of virtio-mmio version ${snapshot.version} restored into version ${this.version}`);
    this.core.restore(snapshot.core);
    this.deviceFeaturesSel = snapshot.deviceFeaturesSel;
    this.driverFeaturesSel = snapshot.driverFeaturesSel;
    this.queueSel = snapshot.queueSel;
    this.shmSel = snapshot.shmSel;
    this.addressWords.clear();
    for (const [index, words] of snapshot.addressWords) this.addressWords.set(index, Uint32Array.from(words));
    this.guestPageSize = snapshot.guestPageSize;
    this.queueAlign.set(snapshot.queueAlign.slice(0, this.queueAlign.length));
    this.queuePfn.set(snapshot.queuePfn.slice(0, this.queuePfn.length));
    this.updateNotificationData();
    this.interruptStatusValue = snapshot.interruptStatus & INTERRUPT_BITS;
    this.updateLine();
  }

  /** Checks a control register access (spec 4.2.2.2): 32 bits wide, aligned, a register this version has, in a direction it allows. */
  private controlAccess(offset: number, size: number, direction: number): boolean {
    if (!Number.isInteger(offset) || offset < 0) {
      this.violations.offset++;
      return false;
    }
    if (size !== 4 || (offset & 3) !== 0) {
      this.violations.width++;
      return false;
    }
    const access = this.access[offset >>> 2] ?? 0;
    if (access === 0) {
      this.violations.offset++;
      return false;
    }
    if ((access & direction) === 0) {
      this.violations.direction++;
      return false;
    }
    return true;
  }

  /** Checks a configuration space access (spec 4.2.2.2): 8, 16 or 32 bits wide, naturally aligned, inside the block. */
  private configAccess(offset: number, size: number): Uint8Array | undefined {
    if (offset >= this.size || !Number.isInteger(offset)) {
      this.violations.offset++;
      return undefined;
    }
    const bytes = size === 1 || size === 2 || size === 4 ? this.configAccessBytes[size] : undefined;
    if (bytes === undefined || offset % size !== 0) {
      this.violations.width++;
      return undefined;
    }
    return bytes;
  }

  private readConfig(offset: number, size: number): number {
    const bytes = this.configAccess(offset, size);
    if (bytes === undefined || !this.core.readConfig(offset - Reg.Config, bytes)) return 0;
    // Little-endian for version 2 (spec 4.2.2); guest-native for legacy, which is little-endian on every guest we run.
    return size === 4 ? this.configView.getUint32(0, true) : size === 2 ? this.configView.getUint16(0, true) : this.configBytes[0] ?? 0;
  }

  private writeConfig(offset: number, size: number, value: number): void {
    const bytes = this.configAccess(offset, size);
    if (bytes === undefined) return;
    this.configView.setUint32(0, value >>> 0, true);
    this.core.writeConfig(offset - Reg.Config, bytes);
  }

  private writeDriverFeatures(value: number): void {
    // Linux's legacy path writes the upper page too, with zeros: there is nothing to set there, so nothing to refuse.
    if (this.core.legacy && this.driverFeaturesSel !== 0 && value === 0) return;
    this.core.writeDriverFeaturesPage(this.driverFeaturesSel, value);
  }

  private writeStatus(value: number): void {
    if (value > 0xff) {
      this.violations.value++;
      return;
    }
    this.core.writeStatus(value);
    if (value === 0) {
      // Spec 4.2.2.1: reset clears InterruptStatus and every queue's ready bit (QueuePFN in the legacy layout).
      this.addressWords.clear();
      this.queuePfn.fill(0);
      this.queueAlign.fill(LEGACY_DEFAULT_QUEUE_ALIGN);
      this.interruptStatusValue = 0;
      this.updateLine();
    }
    this.updateNotificationData();
  }

  /** Notification data is in use once the driver set DRIVER_OK with VIRTIO_F_NOTIFICATION_DATA negotiated. */
  private updateNotificationData(): void {
    this.notificationDataNegotiated = this.core.driverOk && hasFeature(this.core.driverFeatures, VIRTIO_F_NOTIFICATION_DATA);
  }

  /** Version 2: one half of a queue area's 64-bit address. Refused (by the core) while the queue is enabled. */
  private writeQueueAddress(area: Area, isHigh: boolean, value: number): void {
    const index = this.queueSel;
    const words = this.addressWords.get(index);
    const low = isHigh ? (words?.[2 * area] ?? 0) : value;
    const highWord = isHigh ? value : (words?.[2 * area + 1] ?? 0);
    // Above 2^53 the sum is not a safe integer, and the core refuses it as "not a guest address" when the queue is enabled.
    const address = highWord * WORD + low;
    const change: Partial<QueueConfig> =
      area === Area.Desc ? { descAddr: address } : area === Area.Driver ? { driverAddr: address } : { deviceAddr: address };
    if (!this.core.setQueueConfig(index, change)) return;
    const stored = words ?? new Uint32Array(6);
    stored[2 * area + (isHigh ? 1 : 0)] = value;
    this.addressWords.set(index, stored);
  }

  private writeQueueReady(value: number): void {
    if (value === 1) {
      this.core.enableQueue(this.queueSel);
    } else if (value === 0) {
      this.stopQueue(this.queueSel);
    } else {
      this.violations.value++;
    }
  }

  private writeQueueReset(value: number): void {
    const negotiated = (this.core.status & DeviceStatus.FEATURES_OK) !== 0 && hasFeature(this.core.driverFeatures, VIRTIO_F_RING_RESET);
    if (value !== 1 || !negotiated) {
      this.violations.value++;
      return;
    }
    // Spec 2.6.1: the queue stops and its configuration returns to the defaults.
    this.core.resetQueue(this.queueSel);
    this.addressWords.delete(this.queueSel);
  }

  /**
   * The queue is enabled, or its reset is still finishing I/O that touches its
   * rings: QueueReady (QueuePFN in the legacy layout) reads as in use until the
   * device has stopped touching the queue (spec 4.2.2.1), and the queue cannot
   * be programmed again before.
   */
  private queueInUse(index: number): boolean {
    return this.core.queueSlot(index)?.enabled === true || this.core.queueResetPending(index);
  }

  /** The driver stops using a queue (QueueReady or QueuePFN set to 0): the device must not touch it any more. */
  private stopQueue(index: number): void {
    if (this.core.queueSlot(index)?.enabled !== true) return;
    this.core.disableQueue(index);
    this.addressWords.delete(index);
  }

  /** Legacy: the used ring alignment of the selected queue, a power of two, while the queue is not in use. */
  private writeQueueAlign(value: number): void {
    const slot = this.core.queueSlot(this.queueSel);
    if (slot === undefined || slot.maxSize === 0 || this.queueInUse(this.queueSel)) {
      this.core.violations.queue++;
    } else if (value === 0 || (value & (value - 1)) !== 0) {
      this.violations.value++;
    } else {
      this.queueAlign[this.queueSel] = value;
    }
  }

  /**
   * Legacy: the guest page number of the selected queue (spec 4.2.4). The queue
   * is laid out from there with QueueSize and QueueAlign, and enabled at once;
   * 0 stops it.
   */
  private writeQueuePfn(value: number): void {
    const index = this.queueSel;
    if (value === 0) {
      this.stopQueue(index);
      return;
    }
    const slot = this.core.queueSlot(index);
    if (slot === undefined || slot.maxSize === 0 || this.queueInUse(index)) {
      this.core.violations.queue++;
      return;
    }
    if (this.guestPageSize === 0) {
      this.core.needsReset(`queue ${index}: QueuePFN written before GuestPageSize`);
      return;
    }
    const layout = legacySplitRingLayout(value * this.guestPageSize, slot.size, this.queueAlign[index] ?? LEGACY_DEFAULT_QUEUE_ALIGN);
    // Refused (and counted by the core) while a device reset is still finishing.
    if (!this.core.setQueueConfig(index, layout)) return;
    this.queuePfn[index] = value;
    this.core.enableQueue(index);
  }

  /**
   * An available buffer notification (spec 4.2.3.3): the queue index, or with
   * VIRTIO_F_NOTIFICATION_DATA the index in bits 0-15 and next_off/next_wrap above it (spec 2.9).
   */
  private queueNotify(value: number): void {
    if (this.notificationDataNegotiated) this.core.notify(value & 0xffff, value);
    else this.core.notify(value);
  }

  private sharedMemory(): SharedMemoryMapping | undefined {
    return this.core.sharedMemory.get(this.shmSel);
  }

  private raise(bit: number): void {
    this.interruptStatusValue |= bit;
    this.updateLine();
  }

  /** The line follows InterruptStatus: asserted exactly while it is non-zero (spec 4.2.3.4). */
  private updateLine(): void {
    const level = this.interruptStatusValue !== 0;
    if (level === this.level) return;
    this.level = level;
    this.irq.set(level);
  }
}

/** Bits 0-31 of a 64-bit register value; all ones when absent. */
function low(value: number | undefined): number {
  return value === undefined ? 0xffffffff : value >>> 0;
}

/** Bits 32-63 of a 64-bit register value; all ones when absent. */
function high(value: number | undefined): number {
  return value === undefined ? 0xffffffff : Math.floor(value / WORD) >>> 0;
}
