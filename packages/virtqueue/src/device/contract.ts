import type { GuestMemory } from '../memory/guest-memory.js';
import type { ByteOrder } from '../queue/create.js';
import type { Virtqueue } from '../queue/virtqueue.js';

/**
 * Version of the structural contract between devices and transports. A device
 * declares the version it was written against; a transport refuses a device
 * with a newer major version than it knows.
 */
export const VIRTIO_DEVICE_CONTRACT_VERSION = 1;

/** Interrupts a transport raises on a device's behalf (spec 2.3, 2.7.8, 4.x). */
export interface TransportInterrupts {
  /** A used buffer notification for queue `index`. */
  queue(index: number): void;
  /** A configuration change notification (also sent when DEVICE_NEEDS_RESET is set). */
  config(): void;
}

/** What a device can tell its transport at any time, activated or not. */
export interface DeviceHost {
  /** The device changed its configuration space: bump the generation and, after DRIVER_OK, interrupt. */
  configChanged(): void;
  /** The device cannot go on: set DEVICE_NEEDS_RESET (spec 2.1.2) with a reason for the log. */
  needsReset(reason: string): void;
}

/** A shared memory region the device exposes (spec 2.10), such as virtio-fs's DAX window. */
export interface SharedMemoryRegionSpec {
  /** The region's shmid, as device types define them. */
  readonly id: number;
  /** Size in bytes. */
  readonly size: number;
}

/** A shared memory region as the VMM mapped it into the guest. */
export interface SharedMemoryMapping extends SharedMemoryRegionSpec {
  /** Guest-physical address the VMM placed the region at. */
  readonly guestAddress: number;
  /** The region's bytes, as the device sees them. */
  readonly bytes: Uint8Array;
}

/** Everything a device is given when the driver sets DRIVER_OK. */
export interface ActivationContext extends DeviceHost {
  /** Guest memory, for the device's own accesses outside its chains (rarely needed). */
  readonly memory: GuestMemory;
  /** The negotiated features. */
  readonly features: bigint;
  /** The queues the driver enabled, by index. */
  readonly queues: ReadonlyMap<number, Virtqueue>;
  /** Aborted when the device is reset: stop work and drop late completions. */
  readonly signal: AbortSignal;
  /** Shared memory regions the VMM mapped, by shmid. */
  readonly sharedMemory: ReadonlyMap<number, SharedMemoryMapping>;
  /**
   * Byte order of the multi-byte fields in the driver's requests: 'big-endian'
   * only for a legacy driver on a big-endian guest, whose fields are in the
   * guest's order (spec 2.7.3), which only a device declaring
   * {@link VirtioDevice.legacyConfigFields} is given. Little-endian otherwise,
   * and when absent.
   */
  readonly byteOrder?: ByteOrder;
}

/** A multi-byte field of a device's configuration space. */
export interface ConfigField {
  /** Offset in the configuration space. */
  readonly offset: number;
  /** Size in bytes: 2, 4 or 8. */
  readonly size: number;
}

/**
 * A virtio device, transport-neutral. Transports ({@link VirtioCore} inside
 * each) call these methods; a device never sees registers, only the spec's
 * abstractions: features, configuration space, queues and notifications.
 *
 * The contract is structural: no `instanceof` across packages, so two copies of
 * this package in one dependency tree interoperate.
 */
export interface VirtioDevice {
  /** The {@link VIRTIO_DEVICE_CONTRACT_VERSION} the device was written against. */
  readonly contractVersion?: number;
  /** Device ID (spec 5, {@link DeviceId}). */
  readonly deviceType: number;
  /** Feature bits the device offers, device-specific and reserved (VERSION_1, RING_PACKED, ...). */
  readonly deviceFeatures: bigint;
  /** Maximum size of each queue; the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Size of the device-specific configuration space in bytes. */
  readonly configSize: number;
  /** Shared memory regions the transport advertises (spec 2.10). */
  readonly sharedMemoryRegions?: readonly SharedMemoryRegionSpec[];
  /**
   * The multi-byte fields of the configuration space, for legacy drivers on
   * big-endian guests (virtio-ccw revision 0 on s390). Legacy interfaces put
   * configuration fields and request fields in the guest's byte order
   * (spec 2.5.3, 2.7.3); the device lays its configuration out little-endian
   * and only it knows where its fields are. Declaring them (an empty list when
   * there are none) says the device supports such drivers: the transport
   * byte-swaps these fields for them, and the device reads and writes its
   * requests' fields in {@link ActivationContext.byteOrder}. Transports refuse
   * big-endian legacy drivers to a device without it.
   */
  readonly legacyConfigFields?: readonly ConfigField[];

  /** Called once by the transport before anything else, with the channel back to it. */
  attach?(host: DeviceHost): void;
  /** Vetoes a feature set the driver asked for at FEATURES_OK (spec 2.2.2); true accepts. */
  acceptFeatures?(features: bigint): boolean;
  /** Copies configuration bytes at `offset` into `data`. The range has been bounds-checked. */
  readConfig(offset: number, data: Uint8Array): void;
  /** Applies a driver write of `data` at `offset`. The range has been bounds-checked. */
  writeConfig(offset: number, data: Uint8Array): void;
  /** The driver set DRIVER_OK: start serving. A throw or rejection sets DEVICE_NEEDS_RESET. */
  activate(context: ActivationContext): void | Promise<void>;
  /**
   * The driver reset the device: drop all state tied to the previous
   * activation. A device with I/O still in flight returns a promise that settles
   * once that I/O has finished touching guest memory; until then the transport
   * keeps reporting a non-zero device status, as spec 2.4 allows ("after
   * indicating completion of the reset by reinitializing device status to 0").
   */
  reset(): void | Promise<void>;
  /** The driver notified queue `index` (an available buffer notification). */
  notify(index: number): void;
  /**
   * VIRTIO_F_RING_RESET: queue `index` was reset; forget its in-flight work
   * (spec 2.6.1). A promise keeps the transport's queue-reset register reading 1
   * until the queue's in-flight I/O has finished with guest memory.
   */
  resetQueue?(index: number): void | Promise<void>;
  /** VIRTIO_F_RING_RESET: queue `index` was enabled again after a reset. */
  enableQueue?(index: number, queue: Virtqueue): void;
  /** Device state for a snapshot, taken while no request is in flight. */
  snapshot?(): unknown;
  /** Restores state produced by {@link VirtioDevice.snapshot}, before activation. */
  restore?(state: unknown): void;
}
