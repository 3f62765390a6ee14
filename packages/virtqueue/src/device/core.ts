import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
} from '../constants.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { createVirtqueue, queueConfigProblem, type ByteOrder } from '../queue/create.js';
import type { QueueConfig, QueuePosition, Virtqueue } from '../queue/virtqueue.js';
import {
  VIRTIO_DEVICE_CONTRACT_VERSION,
  type ActivationContext,
  type SharedMemoryMapping,
  type TransportInterrupts,
  type VirtioDevice,
} from './contract.js';
import { BigEndianConfig } from './legacy-config.js';

/** Feature bits 0-23 and 50-127 belong to the device type (spec 6). */
const DEVICE_SPECIFIC_FEATURES = (featureBit(24) - 1n) | (((1n << 128n) - 1n) ^ (featureBit(50) - 1n));

/** Reserved feature bits the queue implementation itself supports, on any transport. */
const QUEUE_FEATURES =
  featureBit(VIRTIO_F_INDIRECT_DESC) |
  featureBit(VIRTIO_F_EVENT_IDX) |
  featureBit(VIRTIO_F_VERSION_1) |
  featureBit(VIRTIO_F_RING_PACKED) |
  featureBit(VIRTIO_F_IN_ORDER);

/**
 * The status bits a driver may set. DEVICE_NEEDS_RESET is the device's; SUSPEND
 * (16) needs VIRTIO_F_SUSPEND, which is never offered (spec 3.4); the rest are
 * reserved.
 */
const DRIVER_STATUS_BITS =
  DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK | DeviceStatus.FAILED;

/** A queue's configuration as the driver programs it through a transport. */
export interface QueueSlot {
  /** Largest size the device supports; 0 means the queue does not exist. */
  readonly maxSize: number;
  /** Size the driver chose (defaults to maxSize). */
  size: number;
  /** Descriptor Area address. */
  descAddr: number;
  /** Driver Area address. */
  driverAddr: number;
  /** Device Area address. */
  deviceAddr: number;
  /** The driver enabled the queue (QueueReady / queue_enable). */
  enabled: boolean;
  /** The running queue once activated. */
  queue: Virtqueue | undefined;
}

/** Counts of driver mistakes that were ignored rather than obeyed. */
export interface DriverViolations {
  /** Status writes that cleared bits or skipped steps of the initialisation sequence. */
  status: number;
  /** Feature writes after FEATURES_OK. */
  features: number;
  /** Configuration accesses outside the configuration space. */
  config: number;
  /** Notifications of non-existent or disabled queues, or before DRIVER_OK. */
  notify: number;
  /** Queue configuration writes after the queue was enabled, or to absent queues. */
  queue: number;
}

/** The transport's part in building a {@link VirtioCore}. */
export interface VirtioCoreOptions {
  /** The device the transport carries. */
  readonly device: VirtioDevice;
  /** Guest memory the queues live in. */
  readonly memory: GuestMemory;
  /** How the transport raises interrupts. */
  readonly interrupts: TransportInterrupts;
  /** Optional reserved features the transport can carry: VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_RING_RESET. */
  readonly transportFeatures?: bigint;
  /** Diagnostics sink for guest errors (DEVICE_NEEDS_RESET reasons, refused features). */
  readonly log?: (message: string) => void;
}

/** A saved core: status, features, queue positions and the device's own state. */
export interface VirtioCoreSnapshot {
  readonly status: number;
  readonly driverFeatures: string;
  readonly configGeneration: number;
  readonly queues: readonly {
    readonly size: number;
    readonly descAddr: number;
    readonly driverAddr: number;
    readonly deviceAddr: number;
    readonly enabled: boolean;
    readonly position: QueuePosition | undefined;
  }[];
  readonly device: unknown;
}

type ActivationState = 'inactive' | 'activating' | 'active';

/**
 * The transport-neutral device status machine (spec 2.1, 2.2, 3.1) that every
 * transport wraps: feature pages, FEATURES_OK refused for features the device
 * did not offer, queue configuration and enabling, activation at DRIVER_OK,
 * DEVICE_NEEDS_RESET when activation or a ring fails, reset on status 0, and
 * the configuration generation counter. Every call into the device is guarded:
 * nothing the guest triggers throws out of here.
 */
export class VirtioCore {
  /** The device. */
  readonly device: VirtioDevice;
  /** Guest memory; a VMM may replace it (memory hot-plug) while the device is reset. */
  memory: GuestMemory;
  /** Feature bits offered to the driver: the device's, minus those this transport cannot carry. */
  readonly offeredFeatures: bigint;
  /** The features the driver wrote (final once FEATURES_OK is set). */
  driverFeatures = 0n;
  /** Incremented whenever the configuration space changes (spec 2.5.1). */
  configGeneration = 0;
  /**
   * The driver is a legacy (pre-1.0) driver: no FEATURES_OK step, 32 feature bits.
   * Transports with a legacy interface set this while the device is reset.
   */
  legacy = false;
  /**
   * The byte order of a legacy driver's rings, requests and configuration
   * fields: its guest's (spec 2.5.3, 2.7.3). Transports for big-endian guests
   * (virtio-ccw revision 0 on s390) set 'big-endian' while the device is
   * reset, and only for a device that declares its
   * {@link VirtioDevice.legacyConfigFields}; without them such a driver finds
   * the configuration space closed (reads give zeros, writes are dropped).
   * Modern drivers are little-endian whatever this says.
   */
  legacyByteOrder: ByteOrder = 'little-endian';
  /** Driver mistakes ignored so far. */
  readonly violations: DriverViolations = { status: 0, features: 0, config: 0, notify: 0, queue: 0 };
  /** Why DEVICE_NEEDS_RESET was last set. */
  needsResetReason: string | undefined;
  /** Shared memory regions the VMM mapped, handed to the device at activation. */
  readonly sharedMemory = new Map<number, SharedMemoryMapping>();
  private readonly queues: QueueSlot[];
  private readonly interrupts: TransportInterrupts;
  private readonly log: (message: string) => void;
  private statusValue = 0;
  /** Settles when a device reset whose I/O was still in flight has completed. */
  private resetInProgress: Promise<void> | undefined;
  /** Queue resets whose I/O is still in flight, by queue index. */
  private readonly queueResets = new Map<number, Promise<void>>();
  private activation: ActivationState = 'inactive';
  private abort: AbortController | undefined;
  private pendingNotify = new Set<number>();
  /** The big-endian view of the configuration space, when the device declares its fields. */
  private readonly bigEndianConfig: BigEndianConfig | undefined;

  /** Wraps `options.device`; throws if the device is malformed (a programming error, not a guest one). */
  constructor(options: VirtioCoreOptions) {
    const { device } = options;
    if ((device.contractVersion ?? 1) > VIRTIO_DEVICE_CONTRACT_VERSION) {
      throw new Error(`device contract version ${device.contractVersion} is newer than ${VIRTIO_DEVICE_CONTRACT_VERSION}`);
    }
    for (const max of device.queueMaxSizes) {
      if (!Number.isInteger(max) || max < 0 || max > 32768) throw new RangeError(`queue max size ${max} is not in 0..32768`);
    }
    this.device = device;
    this.memory = options.memory;
    this.interrupts = options.interrupts;
    this.log = options.log ?? (() => undefined);
    const transportFeatures = (options.transportFeatures ?? 0n) & (featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET));
    let supported = DEVICE_SPECIFIC_FEATURES | QUEUE_FEATURES | transportFeatures;
    if (device.resetQueue === undefined || device.enableQueue === undefined) supported &= ~featureBit(VIRTIO_F_RING_RESET);
    this.offeredFeatures = device.deviceFeatures & supported;
    this.bigEndianConfig = device.legacyConfigFields === undefined ? undefined : new BigEndianConfig(device.legacyConfigFields, device.configSize);
    this.queues = device.queueMaxSizes.map((maxSize) => ({
      maxSize,
      size: maxSize,
      descAddr: 0,
      driverAddr: 0,
      deviceAddr: 0,
      enabled: false,
      queue: undefined,
    }));
    device.attach?.({ configChanged: () => this.configChanged(), needsReset: (reason) => this.needsReset(reason) });
  }

  /** The device status field (spec 2.1). */
  get status(): number {
    return this.statusValue;
  }

  /** Number of queues the device has. */
  get queueCount(): number {
    return this.queues.length;
  }

  /** True once the driver set DRIVER_OK and the device has not been reset since. */
  get driverOk(): boolean {
    return (this.statusValue & DeviceStatus.DRIVER_OK) !== 0 && this.resetInProgress === undefined;
  }

  /**
   * While a device reset is finishing I/O that was in flight, a promise that
   * settles once device status reads 0 (spec 2.4); otherwise undefined. A
   * transport whose driver does not poll the status (MMIO, CCW's VDEV_RESET)
   * completes the reset access only when this settles.
   */
  get resetPending(): Promise<void> | undefined {
    return this.resetInProgress;
  }

  /** True while queue `index`'s reset is finishing in-flight I/O: its queue-reset register reads 1 (spec 2.6.1). */
  queueResetPending(index: number): boolean {
    return this.queueResets.has(index);
  }

  /** 32 bits of the offered features, page `page` (bits 32*page .. 32*page+31). */
  deviceFeaturesPage(page: number): number {
    if (!Number.isInteger(page) || page < 0 || page > 3) return 0;
    const features = this.legacy ? this.offeredFeatures & 0xffffffffn : this.offeredFeatures;
    return Number((features >> BigInt(32 * page)) & 0xffffffffn);
  }

  /** The driver writes 32 bits of its feature set. Ignored once FEATURES_OK is set (spec 3.1.1). */
  writeDriverFeaturesPage(page: number, value: number): void {
    // A legacy device finalises features on first use (spec 3.1.2), a modern one at FEATURES_OK.
    const locked = this.legacy ? this.driverOk || this.activation !== 'inactive' : (this.statusValue & DeviceStatus.FEATURES_OK) !== 0;
    if (locked || !Number.isInteger(page) || page < 0 || page > 3 || (this.legacy && page !== 0)) {
      this.violations.features++;
      return;
    }
    const shift = BigInt(32 * page);
    this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(value >>> 0) << shift);
  }

  /**
   * The driver writes the status field. 0 resets the device. Otherwise the
   * write may only add bits, in the order of the initialisation sequence
   * (spec 3.1.1); anything else is ignored and counted. FEATURES_OK is kept only
   * if the features are acceptable; DRIVER_OK activates the device.
   */
  writeStatus(value: number): void {
    value &= 0xff;
    if (this.resetInProgress !== undefined) {
      // The driver must wait for status to read 0 before anything else (spec 2.4).
      if (value !== 0) this.violations.status++;
      return;
    }
    if (value === 0) {
      this.reset();
      return;
    }
    const old = this.statusValue;
    const wanted = value & DRIVER_STATUS_BITS;
    const added = wanted & ~old;
    if ((old & ~DeviceStatus.DEVICE_NEEDS_RESET & ~wanted) !== 0 || !this.inSequence(wanted)) {
      this.violations.status++;
      return;
    }
    let next = wanted;
    if ((added & DeviceStatus.FEATURES_OK) !== 0 && !this.featuresAcceptable()) {
      next &= ~(DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    }
    // Read DEVICE_NEEDS_RESET only now: the device's acceptFeatures may just have set it.
    next |= this.statusValue & DeviceStatus.DEVICE_NEEDS_RESET;
    this.statusValue = next;
    // A device that already set DEVICE_NEEDS_RESET (a queue the driver could not enable) stays
    // in its error state until reset (spec 2.1.2): it does not start serving. A legacy driver
    // may have started it already, by using it before DRIVER_OK (spec 3.1.2).
    if (
      (added & DeviceStatus.DRIVER_OK) !== 0 &&
      (next & (DeviceStatus.DRIVER_OK | DeviceStatus.DEVICE_NEEDS_RESET)) === DeviceStatus.DRIVER_OK &&
      this.activation === 'inactive'
    ) {
      this.activate();
    }
  }

  /** The configuration of queue `index`, or undefined if there is no such queue. */
  queueSlot(index: number): Readonly<QueueSlot> | undefined {
    return this.queues[index];
  }

  /**
   * The driver programs part of queue `index`'s configuration. Refused (and
   * counted) for absent queues and for enabled ones (spec 4.1.4.3.2, 4.2.2.2).
   */
  setQueueConfig(index: number, change: Partial<QueueConfig>): boolean {
    const slot = this.queues[index];
    if (slot === undefined || slot.maxSize === 0 || slot.enabled || this.busy(index)) {
      this.violations.queue++;
      return false;
    }
    if (change.size !== undefined) slot.size = change.size;
    if (change.descAddr !== undefined) slot.descAddr = change.descAddr;
    if (change.driverAddr !== undefined) slot.driverAddr = change.driverAddr;
    if (change.deviceAddr !== undefined) slot.deviceAddr = change.deviceAddr;
    return true;
  }

  /**
   * The driver enables queue `index`. The configuration is checked now: a size
   * above the maximum, a split size that is not a power of two, or areas outside
   * guest memory leave the queue disabled and set DEVICE_NEEDS_RESET. After
   * DRIVER_OK (re-enabling after a queue reset) the queue starts at once.
   * Before FEATURES_OK the request is ignored and counted: the ring layout
   * depends on features that are not final yet (spec 3.1.1 sets queues up after FEATURES_OK).
   */
  enableQueue(index: number): boolean {
    const slot = this.queues[index];
    const featuresFinal = this.legacy || (this.statusValue & DeviceStatus.FEATURES_OK) !== 0;
    if (slot === undefined || slot.maxSize === 0 || slot.enabled || !featuresFinal || this.busy(index)) {
      this.violations.queue++;
      return false;
    }
    const packed = hasFeature(this.driverFeatures, VIRTIO_F_RING_PACKED);
    const problem =
      slot.size > slot.maxSize
        ? `queue ${index}: size ${slot.size} is above the maximum ${slot.maxSize}`
        : queueConfigProblem(this.memory, slot, packed);
    if (problem !== undefined) {
      this.needsReset(problem.startsWith('queue') ? problem : `queue ${index}: ${problem}`);
      return false;
    }
    slot.enabled = true;
    if (this.activation === 'active') {
      const queue = this.startQueue(index, slot, undefined);
      if (queue !== undefined) this.guard(() => this.device.enableQueue?.(index, queue), 'enableQueue');
    }
    return true;
  }

  /**
   * VIRTIO_F_RING_RESET: the driver resets queue `index` (spec 2.6.1): the queue
   * stops and returns to its initial state, ready to be configured and enabled
   * again. Ignored (and counted) unless VIRTIO_F_RING_RESET was negotiated.
   */
  resetQueue(index: number): void {
    if (!hasFeature(this.driverFeatures, VIRTIO_F_RING_RESET)) {
      this.violations.queue++;
      return;
    }
    this.disableQueue(index);
  }

  /**
   * Stops queue `index` and returns its configuration to the defaults, whatever
   * was negotiated: a transport's own way of disabling a queue (MMIO QueueReady
   * 0, a legacy queue address of 0). The device never touches the old rings again.
   */
  disableQueue(index: number): void {
    const slot = this.queues[index];
    if (slot === undefined || slot.maxSize === 0) {
      this.violations.queue++;
      return;
    }
    const wasRunning = slot.queue !== undefined;
    slot.queue?.detach();
    this.clearSlot(slot);
    if (!wasRunning) return;
    const finishing = this.attempt(() => this.device.resetQueue?.(index), 'resetQueue');
    if (finishing instanceof Promise) {
      const done = finishing.then(
        () => undefined,
        (error: unknown) => this.log(`queue ${index} reset failed: ${describe(error)}`),
      );
      this.queueResets.set(index, done);
      void done.then(() => {
        if (this.queueResets.get(index) === done) this.queueResets.delete(index);
      });
    }
  }

  /** The byte order of the driver's rings, requests and configuration fields (spec 2.7.3): a legacy driver's guest's, else little-endian. */
  get byteOrder(): ByteOrder {
    return this.legacy ? this.legacyByteOrder : 'little-endian';
  }

  /**
   * Copies configuration bytes into `data`, in the driver's byte order; false
   * (and zeros) if the range is outside the configuration space, or the device
   * cannot present it big-endian.
   */
  readConfig(offset: number, data: Uint8Array): boolean {
    if (!this.configRange(offset, data.length)) {
      data.fill(0);
      return false;
    }
    if (this.byteOrder === 'big-endian') return this.readBigEndianConfig(offset, data);
    if (!this.guard(() => this.device.readConfig(offset, data), 'readConfig')) data.fill(0);
    return true;
  }

  /**
   * Applies a driver configuration write, given in the driver's byte order;
   * false if outside the configuration space, or the device cannot take it
   * big-endian.
   */
  writeConfig(offset: number, data: Uint8Array): boolean {
    if (!this.configRange(offset, data.length)) return false;
    if (this.byteOrder === 'big-endian') return this.writeBigEndianConfig(offset, data);
    this.guard(() => this.device.writeConfig(offset, data), 'writeConfig');
    return true;
  }

  /** An available buffer notification for queue `index`, with its notification data if negotiated (spec 2.9). */
  notify(index: number, data?: number): void {
    const slot = this.queues[index];
    if (slot === undefined || !slot.enabled || !(this.driverOk || this.legacyEarlyUse())) {
      this.violations.notify++;
      return;
    }
    if (data !== undefined && hasFeature(this.driverFeatures, VIRTIO_F_NOTIFICATION_DATA)) slot.queue?.setNotificationData(data);
    if (this.activation === 'activating') {
      this.pendingNotify.add(index);
      return;
    }
    if (this.activation === 'active') this.guard(() => this.device.notify(index), 'notify');
  }

  /** The device's configuration changed (spec 2.5): new generation, and an interrupt after DRIVER_OK. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.driverOk) this.interrupts.config();
  }

  /**
   * Sets DEVICE_NEEDS_RESET (spec 2.1.2) and, after DRIVER_OK, sends a
   * configuration change notification as spec 2.1.2.1 requires.
   */
  needsReset(reason: string): void {
    this.needsResetReason = reason;
    this.log(`DEVICE_NEEDS_RESET: ${reason}`);
    if ((this.statusValue & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return;
    this.statusValue |= DeviceStatus.DEVICE_NEEDS_RESET;
    if (this.driverOk) this.interrupts.config();
  }

  /**
   * Device reset (status 0, or a transport-specific reset): queues detach, the
   * device forgets everything. If the device still has I/O in flight (its
   * reset() returned a promise), status keeps its old value until that I/O is
   * done and only then reads 0 (spec 2.4); {@link resetPending} tells when.
   */
  reset(): void {
    if (this.resetInProgress !== undefined) return;
    this.abort?.abort();
    this.abort = undefined;
    for (const slot of this.queues) {
      slot.queue?.detach();
      this.clearSlot(slot);
    }
    const wasActive = this.activation !== 'inactive';
    this.activation = 'inactive';
    this.pendingNotify.clear();
    this.driverFeatures = 0n;
    this.needsResetReason = undefined;
    const finishing = wasActive ? this.attempt(() => this.device.reset(), 'reset') : undefined;
    const pendingQueues = [...this.queueResets.values()];
    if (!(finishing instanceof Promise) && pendingQueues.length === 0) {
      this.statusValue = 0;
      return;
    }
    const done = Promise.all([finishing, ...pendingQueues]).then(
      () => undefined,
      (error: unknown) => this.log(`device reset failed: ${describe(error)}`),
    );
    this.resetInProgress = done.then(() => {
      this.statusValue = 0;
      this.resetInProgress = undefined;
    });
  }

  /** Saves status, features, queues and device state. Only while no chain is in flight. */
  snapshot(): VirtioCoreSnapshot {
    for (const slot of this.queues) {
      if ((slot.queue?.inFlight ?? 0) > 0) throw new Error('snapshot: requests are in flight; quiesce the device first');
    }
    return {
      status: this.statusValue,
      driverFeatures: this.driverFeatures.toString(16),
      configGeneration: this.configGeneration,
      queues: this.queues.map((slot) => ({
        size: slot.size,
        descAddr: slot.descAddr,
        driverAddr: slot.driverAddr,
        deviceAddr: slot.deviceAddr,
        enabled: slot.enabled,
        position: slot.queue?.position(),
      })),
      device: this.device.snapshot?.(),
    };
  }

  /** Restores a {@link VirtioCoreSnapshot} into a reset core, reactivating the device if it was running. */
  restore(snapshot: VirtioCoreSnapshot): void {
    this.reset();
    this.driverFeatures = BigInt(`0x${snapshot.driverFeatures}`);
    this.configGeneration = snapshot.configGeneration;
    snapshot.queues.forEach((saved, index) => {
      const slot = this.queues[index];
      if (slot === undefined) return;
      slot.size = saved.size;
      slot.descAddr = saved.descAddr;
      slot.driverAddr = saved.driverAddr;
      slot.deviceAddr = saved.deviceAddr;
      slot.enabled = saved.enabled;
    });
    if (snapshot.device !== undefined) this.device.restore?.(snapshot.device);
    this.statusValue = snapshot.status;
    if (this.driverOk) {
      this.activate(new Map(snapshot.queues.map((q, i) => [i, q.position] as const)));
    }
  }

  /** A big-endian legacy read: the whole fields the range touches, byte-reversed (spec 2.5.3). */
  private readBigEndianConfig(offset: number, data: Uint8Array): boolean {
    const view = this.bigEndianConfigView();
    if (view === undefined) {
      data.fill(0);
      return false;
    }
    const [start, end] = view.span(offset, data.length);
    const fields = new Uint8Array(end - start);
    if (!this.guard(() => this.device.readConfig(start, fields), 'readConfig')) {
      data.fill(0);
      return true;
    }
    view.swap(fields, start);
    data.set(fields.subarray(offset - start, offset - start + data.length));
    return true;
  }

  /**
   * A big-endian legacy write: each field the range touches is read, the
   * driver's bytes are merged into its big-endian view, and the device is
   * given whole fields in its own layout, so that it sees field writes as from
   * a little-endian driver.
   */
  private writeBigEndianConfig(offset: number, data: Uint8Array): boolean {
    const view = this.bigEndianConfigView();
    if (view === undefined) return false;
    const [start, end] = view.span(offset, data.length);
    const fields = new Uint8Array(end - start);
    if (!this.guard(() => this.device.readConfig(start, fields), 'readConfig')) return true;
    view.swap(fields, start);
    fields.set(data, offset - start);
    view.swap(fields, start);
    this.guard(() => this.device.writeConfig(start, fields), 'writeConfig');
    return true;
  }

  /** The big-endian view of the configuration space, or undefined (counted) when the device declares no field layout. */
  private bigEndianConfigView(): BigEndianConfig | undefined {
    if (this.bigEndianConfig === undefined) {
      this.violations.config++;
      this.log('configuration access refused: a big-endian legacy driver needs the device to declare legacyConfigFields');
    }
    return this.bigEndianConfig;
  }

  /**
   * A legacy driver may use the device before DRIVER_OK (spec 3.1.2): its first
   * notification after DRIVER activates the device. True if the device is (now)
   * activated for it.
   */
  private legacyEarlyUse(): boolean {
    const status = this.statusValue;
    if (!this.legacy || (status & DeviceStatus.DRIVER) === 0 || (status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return false;
    if (this.activation === 'inactive') this.activate();
    return this.activation !== 'inactive';
  }

  /** A reset of the device or of queue `index` is still finishing: the driver must wait (spec 2.4, 2.6.1). */
  private busy(index: number): boolean {
    return this.resetInProgress !== undefined || this.queueResets.has(index);
  }

  private inSequence(status: number): boolean {
    const has = (bit: number): boolean => (status & bit) !== 0;
    if (has(DeviceStatus.DRIVER) && !has(DeviceStatus.ACKNOWLEDGE)) return false;
    if (has(DeviceStatus.FEATURES_OK) && (this.legacy || !has(DeviceStatus.DRIVER))) return false;
    if (has(DeviceStatus.DRIVER_OK) && !has(this.legacy ? DeviceStatus.DRIVER : DeviceStatus.FEATURES_OK)) return false;
    return true;
  }

  private featuresAcceptable(): boolean {
    const f = this.driverFeatures;
    const unoffered = f & ~this.offeredFeatures;
    if (unoffered !== 0n) {
      this.log(`FEATURES_OK refused: driver asked for unoffered features 0x${unoffered.toString(16)}`);
      return false;
    }
    if (!hasFeature(f, VIRTIO_F_VERSION_1)) {
      this.log('FEATURES_OK refused: VIRTIO_F_VERSION_1 not accepted on a modern interface');
      return false;
    }
    let accepted = true;
    if (!this.guard(() => (accepted = this.device.acceptFeatures?.(f) ?? true), 'acceptFeatures')) return false;
    if (!accepted) this.log(`FEATURES_OK refused by the device for features 0x${f.toString(16)}`);
    return accepted;
  }

  private activate(start?: ReadonlyMap<number, QueuePosition | undefined>): void {
    // A legacy driver never passes FEATURES_OK: keep only what was offered, in 32 bits.
    if (this.legacy) this.driverFeatures &= this.offeredFeatures & 0xffffffffn;
    const queues = new Map<number, Virtqueue>();
    for (let index = 0; index < this.queues.length; index++) {
      const slot = this.queues[index] as QueueSlot;
      if (!slot.enabled) continue;
      const queue = this.startQueue(index, slot, start?.get(index));
      if (queue === undefined) return;
      queues.set(index, queue);
    }
    const abort = new AbortController();
    this.abort = abort;
    this.activation = 'activating';
    const context: ActivationContext = {
      memory: this.memory,
      features: this.driverFeatures,
      queues,
      signal: abort.signal,
      sharedMemory: this.sharedMemory,
      byteOrder: this.byteOrder,
      configChanged: () => this.configChanged(),
      needsReset: (reason) => this.needsReset(reason),
    };
    const fail = (error: unknown): void => {
      if (abort.signal.aborted) return;
      this.activation = 'inactive';
      this.needsReset(`activation failed: ${describe(error)}`);
    };
    const done = (): void => {
      if (abort.signal.aborted || this.activation !== 'activating') return;
      this.activation = 'active';
      const pending = [...this.pendingNotify];
      this.pendingNotify.clear();
      for (const index of pending) this.guard(() => this.device.notify(index), 'notify');
    };
    try {
      const result = this.device.activate(context);
      if (result instanceof Promise) result.then(done, fail);
      else done();
    } catch (error) {
      fail(error);
    }
  }

  private startQueue(index: number, slot: QueueSlot, start: QueuePosition | undefined): Virtqueue | undefined {
    try {
      slot.queue = createVirtqueue(this.memory, slot, {
        index,
        features: this.driverFeatures,
        byteOrder: this.byteOrder,
        hooks: { interrupt: () => this.interrupts.queue(index), corrupt: (reason) => this.needsReset(reason) },
        ...(start === undefined ? {} : { start }),
      });
      return slot.queue;
    } catch (error) {
      this.needsReset(describe(error));
      return undefined;
    }
  }

  private clearSlot(slot: QueueSlot): void {
    slot.queue = undefined;
    slot.enabled = false;
    slot.size = slot.maxSize;
    slot.descAddr = 0;
    slot.driverAddr = 0;
    slot.deviceAddr = 0;
  }

  private configRange(offset: number, length: number): boolean {
    const ok = Number.isInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.device.configSize;
    if (!ok) this.violations.config++;
    return ok;
  }

  /** {@link guard} for a callback whose result matters: undefined when it threw. */
  private attempt<T>(call: () => T, what: string): T | undefined {
    let result: T | undefined;
    this.guard(() => {
      result = call();
    }, what);
    return result;
  }

  /** Runs a device callback; a throw becomes DEVICE_NEEDS_RESET instead of reaching the event loop. */
  private guard(call: () => void, what: string): boolean {
    try {
      call();
      return true;
    } catch (error) {
      this.needsReset(`device ${what} failed: ${describe(error)}`);
      return false;
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
