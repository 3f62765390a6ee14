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
  legacySplitRingLayout,
  splitRingSizes,
  type GuestMemory,
  type GuestMemoryRegion,
  type QueueConfig,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { DriverQueue, type QueueOwner } from './driver-queue.js';
import { DriverError } from './errors.js';
import type { DriverEvent } from './events.js';
import { GuestHeap } from './guest-heap.js';
import { featureNames, statusNames } from './names.js';
import type { DriverTransport, InterruptCause } from './transport.js';

/** Options fixed for the life of a {@link VirtioDriver}. */
export interface VirtioDriverOptions {
  /**
   * The guest-physical window the driver may use for rings, indirect tables and
   * buffers. Defaults to the largest writable region of the transport's memory
   * (less its first page). A quarter holds rings, the rest the buffer heap.
   */
  readonly window?: { readonly start: number; readonly end: number };
  /** Seed for the scattered placement of rings. */
  readonly seed?: number;
  /** Called with every step the driver takes (status writes, features, queues, notifications, interrupts). */
  readonly trace?: (event: DriverEvent) => void;
}

/** What to negotiate and set up in {@link VirtioDriver.init}. Ring features are used only if offered. */
export interface InitOptions {
  /** Ask for VIRTIO_F_RING_PACKED (spec 2.8); otherwise split rings (spec 2.7). */
  readonly packed?: boolean;
  /** Ask for VIRTIO_F_INDIRECT_DESC and put chains of several buffers in indirect tables. */
  readonly indirect?: boolean;
  /** Ask for VIRTIO_F_EVENT_IDX (used_event / avail_event, spec 2.7.7, 2.7.10, 2.8.10). */
  readonly eventIdx?: boolean;
  /** Ask for VIRTIO_F_IN_ORDER and check that the device honours it. */
  readonly inOrder?: boolean;
  /** Ask for VIRTIO_F_NOTIFICATION_DATA (spec 2.9). */
  readonly notificationData?: boolean;
  /** Ask for VIRTIO_F_RING_RESET (spec 2.6.1). */
  readonly ringReset?: boolean;
  /**
   * Drive the device as a legacy (pre-1.0) driver does, over a transport with
   * a legacy interface (spec 3.1.2, 4.1.4.10): 32 feature bits, no
   * FEATURES_OK step, split rings of the device's maximum size in the legacy
   * layout (spec 2.7.2) with the used ring page-aligned.
   */
  readonly legacy?: boolean;
  /** Device-specific feature bits wanted (negotiated as wanted ∩ offered). */
  readonly features?: bigint;
  /**
   * Write exactly these feature bits, offered or not, instead of negotiating.
   * For testing that a device refuses features it did not offer (spec 2.2.1).
   */
  readonly exactFeatures?: bigint;
  /** Queues to set up. Defaults to every queue whose maximum size is not 0. */
  readonly queues?: readonly number[];
  /** Largest queue size to use; split sizes are rounded down to a power of two. Defaults to the device maximum. */
  readonly queueSize?: number;
  /** Device-specific setup after FEATURES_OK, before the queues (spec 3.1.1 step 7): read or write configuration. */
  readonly setup?: (driver: VirtioDriver) => void | Promise<void>;
  /** Runs after the queues are enabled, before DRIVER_OK: populate queues (kicks are held until DRIVER_OK). */
  readonly populate?: (driver: VirtioDriver) => void | Promise<void>;
}

/** Interrupts received, for assertions. */
export interface InterruptCounts {
  /** Every interrupt the transport delivered. */
  total: number;
  /** Configuration change notifications. */
  config: number;
  /** Used buffer notifications the transport could not attribute to a queue (e.g. a shared INTx line). */
  unattributed: number;
  /** Used buffer notifications by queue index. */
  readonly queue: Map<number, number>;
}

/** Ring features the driver can ask for, by option name. */
const RING_FEATURES = {
  packed: VIRTIO_F_RING_PACKED,
  indirect: VIRTIO_F_INDIRECT_DESC,
  eventIdx: VIRTIO_F_EVENT_IDX,
  inOrder: VIRTIO_F_IN_ORDER,
  notificationData: VIRTIO_F_NOTIFICATION_DATA,
  ringReset: VIRTIO_F_RING_RESET,
} as const;

/** A legacy driver negotiates feature bits 0-31 only (spec 3.1.2). */
const LEGACY_FEATURES = 0xffff_ffffn;

/** Queue Align of a legacy driver's split rings: the page (spec 2.7.2, 4.1.5.1.3.1). */
const LEGACY_QUEUE_ALIGN = 4096;

/** Bound on the configuration generation loop, so a device whose generation never settles fails instead of hanging. */
const CONFIG_READ_ATTEMPTS = 1000;

/**
 * A virtio guest driver written from the spec's driver requirements, over any
 * {@link DriverTransport}: the initialisation sequence (spec 3.1.1), feature
 * negotiation, split and packed queues in guest memory, notifications,
 * interrupts, configuration reads with the generation loop (spec 2.5.1),
 * device and queue reset. Device tests and the conformance suite drive devices
 * through it.
 */
export class VirtioDriver {
  /** The transport the device sits behind. */
  readonly transport: DriverTransport;
  /** Guest memory. */
  readonly memory: GuestMemory;
  /** Interrupts received since the driver was created. */
  readonly interrupts: InterruptCounts = { total: 0, config: 0, unattributed: 0, queue: new Map() };
  /** Device misbehaviour the driver detected (bad used IDs or lengths, in-order violations). */
  readonly deviceErrors: string[] = [];
  /** The features the device offered at the last initialisation. */
  offeredFeatures = 0n;
  /** The negotiated features (0 until FEATURES_OK sticks). */
  features = 0n;
  /** The device reported DEVICE_NEEDS_RESET since the last reset. */
  needsReset = false;
  private readonly heap: GuestHeap;
  private readonly rings: GuestAllocator;
  private readonly traceSink: ((event: DriverEvent) => void) | undefined;
  private readonly queues = new Map<number, DriverQueue>();
  private readonly owner: QueueOwner;
  private isLive = false;
  private isLegacy = false;
  private useIndirect = false;
  private configWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];

  /** Binds the driver to `transport` and takes over its interrupts. The device is left untouched until {@link init}. */
  constructor(transport: DriverTransport, options: VirtioDriverOptions = {}) {
    this.transport = transport;
    this.memory = transport.memory;
    this.traceSink = options.trace;
    const window = options.window ?? defaultWindow(transport.memory);
    const ringsEnd = window.start + Math.floor((window.end - window.start) / 4);
    this.rings = new GuestAllocator(window.start, ringsEnd, { seed: options.seed ?? 0x5eed });
    this.heap = new GuestHeap(ringsEnd, window.end);
    this.owner = {
      memory: this.memory,
      heap: this.heap,
      live: () => this.isLive,
      notify: (index, data) => {
        this.trace({ kind: 'notify', index, data });
        this.transport.notify(index, data);
      },
      trace: (event) => this.trace(event),
      deviceError: (message) => this.deviceErrors.push(message),
    };
    transport.onInterrupt((cause) => this.interrupt(cause));
  }

  /** The device status field, as the device reports it. */
  get status(): number {
    return this.transport.getStatus();
  }

  /** DRIVER_OK is set and the device has not been reset since. */
  get live(): boolean {
    return this.isLive;
  }

  /** True when the packed layout is negotiated. */
  get packed(): boolean {
    return hasFeature(this.features, VIRTIO_F_RING_PACKED);
  }

  /**
   * Initialises the device (spec 3.1.1): reset, ACKNOWLEDGE, DRIVER, feature
   * negotiation, FEATURES_OK and its re-read, device-specific setup, queue
   * setup, DRIVER_OK (a legacy driver has no FEATURES_OK step, spec 3.1.2).
   * It first waits for the reset to complete. On failure the driver sets
   * FAILED and throws a {@link DriverError}. Returns the negotiated features.
   */
  async init(options: InitOptions = {}): Promise<bigint> {
    await this.reset();
    const legacy = options.legacy === true;
    this.isLegacy = legacy;
    this.writeStatus(DeviceStatus.ACKNOWLEDGE);
    this.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    const offered = this.transport.readDeviceFeatures();
    this.offeredFeatures = offered;
    if (!legacy && options.exactFeatures === undefined && !hasFeature(offered, VIRTIO_F_VERSION_1)) {
      throw this.giveUp(new DriverError('not-modern', `the device offers no VIRTIO_F_VERSION_1 (features: ${featureNames(offered)}); pass init({ legacy: true }) for a transitional device`));
    }
    const written = options.exactFeatures ?? this.wantedFeatures(options) & offered & (legacy ? LEGACY_FEATURES : ~0n);
    this.transport.writeDriverFeatures(written);
    this.trace({ kind: 'features', offered, written });
    const featuresOk = legacy ? 0 : DeviceStatus.FEATURES_OK;
    if (!legacy) {
      this.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
      // spec 3.1.1 step 6: re-read the status; a cleared FEATURES_OK means the features were refused.
      const accepted = (this.transport.getStatus() & DeviceStatus.FEATURES_OK) !== 0;
      if (!accepted) {
        throw this.giveUp(new DriverError('features-refused', `the device refused features ${featureNames(written)} (offered: ${featureNames(offered)})`));
      }
    }
    this.features = written;
    this.useIndirect = options.indirect === true && hasFeature(written, VIRTIO_F_INDIRECT_DESC);
    try {
      await options.setup?.(this);
      this.setUpQueues(options);
      await options.populate?.(this);
    } catch (error) {
      throw this.giveUp(error instanceof Error ? error : new Error(String(error)));
    }
    this.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | featuresOk | DeviceStatus.DRIVER_OK);
    const status = this.checkStatus();
    if ((status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0 || (status & DeviceStatus.DRIVER_OK) === 0) {
      throw this.giveUp(new DriverError('needs-reset', `the device did not go live (status ${statusNames(status)}); reset it and check the queue setup`));
    }
    this.isLive = true;
    for (const queue of this.queues.values()) queue.flushDeferredKick();
    return written;
  }

  /**
   * Resets the device (spec 2.4): writes status 0 and resolves once it reads
   * back 0, which a device still finishing I/O it had started delays until
   * that I/O is over (the driver MUST wait). Requests in flight fail with
   * reason 'reset' at once; their buffers return to the heap only when the
   * reset is complete, as the device may write them until then. Queues must be
   * set up again with {@link init}, which waits for the reset.
   */
  async reset(): Promise<void> {
    const finishing = this.transport.reset();
    this.trace({ kind: 'reset' });
    this.isLive = false;
    this.features = 0n;
    this.needsReset = false;
    const error = new DriverError('reset', 'the device was reset while the request was in flight');
    for (const queue of this.queues.values()) queue.fail(error);
    this.queues.clear();
    const waiters = this.configWaiters;
    this.configWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
    await finishing;
    this.heap.clear();
    const status = this.transport.getStatus();
    if (status !== 0) throw new DriverError('usage', `the device did not reset: status reads ${statusNames(status)}`);
  }

  /** Queue `index`, once set up. */
  queue(index: number): DriverQueue {
    const queue = this.queues.get(index);
    if (queue === undefined) throw new DriverError('usage', `queue ${index} is not set up; list it in init({ queues })`);
    return queue;
  }

  /** Every queue set up, by index. */
  get activeQueues(): ReadonlyMap<number, DriverQueue> {
    return this.queues;
  }

  /**
   * VIRTIO_F_RING_RESET: resets queue `index` alone (spec 2.6.1) and resolves
   * once the transport reports the reset complete. Its requests in flight fail
   * with reason 'reset' at once, their buffers return to the heap once the
   * reset is complete; {@link enableQueue} may follow then.
   */
  async resetQueue(index: number): Promise<void> {
    this.requireFeature(VIRTIO_F_RING_RESET, 'resetQueue');
    const queue = this.queue(index);
    const finishing = this.transport.resetQueue(index);
    this.trace({ kind: 'queue-reset', index });
    const error = new DriverError('reset', `queue ${index} was reset while the request was in flight`);
    queue.fail(error);
    this.queues.delete(index);
    await finishing;
    queue.discard(error);
  }

  /** VIRTIO_F_RING_RESET: sets queue `index` up again after {@link resetQueue}, in new guest memory (spec 2.6.1.2). */
  enableQueue(index: number, size?: number): DriverQueue {
    this.requireFeature(VIRTIO_F_RING_RESET, 'enableQueue');
    if (this.queues.has(index)) throw new DriverError('usage', `queue ${index} is running; reset it first`);
    const queue = this.setUpQueue(index, this.queueSize(index, size));
    if (this.isLive) queue.flushDeferredKick();
    return queue;
  }

  /**
   * Guest address of `len` fresh bytes from the driver's buffer heap, for
   * chains the caller builds itself. Returned by {@link release} or, all at
   * once, by a device reset.
   */
  allocate(len: number, align = 1): number {
    return this.heap.alloc(len, align);
  }

  /** Returns a buffer from {@link allocate}. */
  release(addr: number): void {
    this.heap.release(addr);
  }

  /**
   * Runs `read` until the configuration generation is the same before and
   * after it (spec 2.5.1), so that multi-field and 64-bit reads are consistent.
   */
  readConfigConsistent<T>(read: () => T): T {
    for (let attempt = 1; attempt <= CONFIG_READ_ATTEMPTS; attempt++) {
      const before = this.transport.configGeneration();
      const value = read();
      const after = this.transport.configGeneration();
      if (after === before) return value;
      this.trace({ kind: 'config-retry', attempt });
    }
    throw new DriverError('config-generation', `the configuration generation changed during ${CONFIG_READ_ATTEMPTS} reads in a row; the device never settles`);
  }

  /** Reads `length` bytes of device configuration at `offset`, consistently (spec 2.5.1). */
  readConfig(offset: number, length: number): Uint8Array {
    return this.readConfigConsistent(() => this.transport.readConfig(offset, length));
  }

  /** Reads a u8 configuration field. */
  readConfigU8(offset: number): number {
    return this.readConfig(offset, 1)[0] as number;
  }

  /** Reads a le16 configuration field. */
  readConfigU16(offset: number): number {
    return view(this.readConfig(offset, 2)).getUint16(0, true);
  }

  /** Reads a le32 configuration field. */
  readConfigU32(offset: number): number {
    return view(this.readConfig(offset, 4)).getUint32(0, true);
  }

  /** Reads a le64 configuration field, as two 32-bit halves inside one generation (spec 2.5.1). */
  readConfigU64(offset: number): bigint {
    return this.readConfigConsistent(() => {
      const lo = view(this.transport.readConfig(offset, 4)).getUint32(0, true);
      const hi = view(this.transport.readConfig(offset + 4, 4)).getUint32(0, true);
      return (BigInt(hi) << 32n) | BigInt(lo);
    });
  }

  /**
   * Writes device configuration; only after FEATURES_OK (spec 3.1.1 step 4: no
   * writes while negotiating), or after DRIVER for a legacy driver, which has no FEATURES_OK.
   */
  writeConfig(offset: number, data: Uint8Array): void {
    if ((this.transport.getStatus() & (this.isLegacy ? DeviceStatus.DRIVER : DeviceStatus.FEATURES_OK)) === 0) {
      throw new DriverError('usage', 'configuration writes are allowed only after FEATURES_OK (spec 3.1.1); write in init({ setup })');
    }
    this.transport.writeConfig(offset, data);
  }

  /** Writes a u8 configuration field. */
  writeConfigU8(offset: number, value: number): void {
    this.writeConfig(offset, Uint8Array.of(value));
  }

  /** Writes a le16 configuration field. */
  writeConfigU16(offset: number, value: number): void {
    const data = new Uint8Array(2);
    view(data).setUint16(0, value, true);
    this.writeConfig(offset, data);
  }

  /** Writes a le32 configuration field. */
  writeConfigU32(offset: number, value: number): void {
    const data = new Uint8Array(4);
    view(data).setUint32(0, value, true);
    this.writeConfig(offset, data);
  }

  /** Resolves at the next configuration change notification; rejects if the device is reset first. */
  configChanged(): Promise<void> {
    return new Promise((resolve, reject) => this.configWaiters.push({ resolve, reject }));
  }

  /** Re-reads the status; records and reports DEVICE_NEEDS_RESET (spec 2.1.2), failing every queue's requests. */
  checkStatus(): number {
    const status = this.transport.getStatus();
    if ((status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) this.noteNeedsReset();
    return status;
  }

  private wantedFeatures(options: InitOptions): bigint {
    let wanted = featureBit(VIRTIO_F_VERSION_1) | (options.features ?? 0n);
    for (const [option, bit] of Object.entries(RING_FEATURES)) {
      if (options[option as keyof typeof RING_FEATURES] === true) wanted |= featureBit(bit);
    }
    return wanted;
  }

  private setUpQueues(options: InitOptions): void {
    const indices = options.queues ?? range(this.transport.queueCount()).filter((i) => this.transport.queueMaxSize(i) > 0);
    const sizes = indices.map((index) => this.queueSize(index, options.queueSize));
    // Rings of earlier initialisations are dead after the reset; start over only when the window is full.
    let placed: QueueConfig[];
    try {
      placed = sizes.map((size) => this.placeRing(size));
    } catch {
      this.rings.reset();
      placed = sizes.map((size) => this.placeRing(size));
    }
    indices.forEach((index, i) => this.setUpQueue(index, sizes[i] as number, placed[i]));
  }

  private queueSize(index: number, wanted: number | undefined): number {
    const max = this.transport.queueMaxSize(index);
    if (max === 0) throw new DriverError('queue', `queue ${index} does not exist (maximum size 0)`);
    // A legacy interface fixes the size at the maximum (spec 4.1.5.1.3.1).
    if (this.isLegacy) return max;
    let size = Math.min(max, wanted ?? max);
    // spec 2.7: split queue sizes are powers of two.
    if (!this.packed) size = 2 ** Math.floor(Math.log2(size));
    return size;
  }

  private placeRing(size: number): QueueConfig {
    if (this.isLegacy) {
      // One block from a page boundary, the used ring on the next one (spec 2.7.2).
      const extent = legacySplitRingLayout(0, size, LEGACY_QUEUE_ALIGN).deviceAddr + splitRingSizes(size).used;
      return legacySplitRingLayout(this.rings.alloc(extent, LEGACY_QUEUE_ALIGN), size, LEGACY_QUEUE_ALIGN);
    }
    return this.packed ? placePackedRing(this.rings, size) : placeSplitRing(this.rings, size);
  }

  private setUpQueue(index: number, size: number, config: QueueConfig = this.placeRing(size)): DriverQueue {
    const f = this.features;
    const queue = new DriverQueue(this.owner, {
      index,
      config,
      packed: this.packed,
      eventIdx: hasFeature(f, VIRTIO_F_EVENT_IDX),
      inOrder: hasFeature(f, VIRTIO_F_IN_ORDER),
      notificationData: hasFeature(f, VIRTIO_F_NOTIFICATION_DATA),
      indirect: this.useIndirect,
    });
    if (!this.transport.setupQueue(index, config)) {
      throw new DriverError('queue', `queue ${index}: the device did not enable it (status ${statusNames(this.transport.getStatus())})`);
    }
    this.trace({ kind: 'queue', index, packed: this.packed, config });
    this.queues.set(index, queue);
    return queue;
  }

  private requireFeature(bit: number, what: string): void {
    if (!hasFeature(this.features, bit)) {
      throw new DriverError('usage', `${what} needs ${featureNames(featureBit(bit))} negotiated; pass it to init()`);
    }
  }

  private writeStatus(status: number): void {
    this.transport.setStatus(status);
    this.trace({ kind: 'status', written: status, readBack: this.transport.getStatus() });
  }

  /**
   * spec 3.1.1: the driver sets FAILED when it gives up on the device; requests
   * already made (in `populate`) fail too. Returns `error`, for the caller to throw.
   */
  private giveUp(error: Error): Error {
    this.isLive = false;
    this.writeStatus(this.transport.getStatus() | DeviceStatus.FAILED);
    const failure = error instanceof DriverError ? error : new DriverError('usage', `initialisation failed: ${error.message}`);
    for (const queue of this.queues.values()) queue.fail(failure);
    return error;
  }

  private interrupt(cause: InterruptCause): void {
    this.interrupts.total++;
    this.trace({ kind: 'interrupt', cause });
    if (cause.kind === 'config') {
      this.interrupts.config++;
      // spec 2.1.2: DEVICE_NEEDS_RESET comes with a configuration change notification.
      this.checkStatus();
      const waiters = this.configWaiters;
      this.configWaiters = [];
      for (const waiter of waiters) waiter.resolve();
      return;
    }
    if (cause.index === undefined) {
      this.interrupts.unattributed++;
      for (const queue of this.queues.values()) queue.drain();
      return;
    }
    this.interrupts.queue.set(cause.index, (this.interrupts.queue.get(cause.index) ?? 0) + 1);
    this.queues.get(cause.index)?.drain();
  }

  private noteNeedsReset(): void {
    if (this.needsReset) return;
    this.needsReset = true;
    this.trace({ kind: 'needs-reset' });
    const error = new DriverError('needs-reset', 'the device set DEVICE_NEEDS_RESET; reset and re-initialise it');
    for (const queue of this.queues.values()) {
      // Used buffers the device published before giving up still belong to their requests.
      queue.drain();
      queue.fail(error);
    }
  }

  private trace(event: DriverEvent): void {
    this.traceSink?.(event);
  }
}

/** The largest writable region, less its first page (address 0 is a poor buffer address). */
function defaultWindow(memory: GuestMemory): { start: number; end: number } {
  const writable = memory.regions.filter((r) => !r.readonly);
  const largest = writable.reduce<GuestMemoryRegion | undefined>((best, r) => (best === undefined || r.size > best.size ? r : best), undefined);
  if (largest === undefined) throw new DriverError('usage', 'guest memory has no writable region for the driver');
  const skip = Math.min(4096, Math.floor(largest.size / 16));
  return { start: largest.guestAddress + skip, end: largest.end };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
