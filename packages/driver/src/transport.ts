import type { GuestMemory, QueueConfig } from '@virtio-ts/virtqueue';

/** Why the device interrupted the driver. */
export type InterruptCause =
  /** A used buffer notification; `index` is the queue when the transport can tell (MSI-X, CCW), else undefined. */
  | { readonly kind: 'queue'; readonly index: number | undefined }
  /** A configuration change notification. */
  | { readonly kind: 'config' };

/**
 * What the guest driver needs from a transport, in the spec's terms (spec 3.1,
 * 4.x). Each transport backend (MMIO, PCI, CCW, or the status machine directly)
 * turns these into its own register or channel-command accesses, so the same
 * driver and conformance suite run over every transport.
 *
 * Register accesses are synchronous: they are to the in-process device. Waiting
 * for the device to use buffers is asynchronous (see {@link onInterrupt}), and
 * so is waiting for a reset the device finishes only once its in-flight I/O is
 * done (spec 2.4, 2.6.1): {@link reset} and {@link resetQueue} then return a promise.
 */
export interface DriverTransport {
  /** Short name for test titles: 'core', 'mmio', 'pci', 'ccw'. */
  readonly name: string;
  /** Guest memory, as the driver sees it. */
  readonly memory: GuestMemory;
  /** The device ID the transport reports (spec 5). */
  deviceId(): number;
  /**
   * Resets the device (status 0, or the transport's reset command) and waits
   * until it reads back 0. Returns a promise when the device finishes the reset
   * later (spec 2.4); nothing else may be done to the device until it settles.
   */
  reset(): void | Promise<void>;
  /** Reads the device status field. */
  getStatus(): number;
  /** Writes the device status field. */
  setStatus(status: number): void;
  /** Reads every page of the device's feature bits. */
  readDeviceFeatures(): bigint;
  /** Writes every page of the driver's feature bits. */
  writeDriverFeatures(features: bigint): void;
  /** Number of queues the transport can address (some may have max size 0). */
  queueCount(): number;
  /** Maximum size of queue `index`; 0 if the queue is not available. */
  queueMaxSize(index: number): number;
  /**
   * Programs queue `index` with `config` and enables it. Returns whether the
   * device reports the queue enabled afterwards.
   */
  setupQueue(index: number, config: QueueConfig): boolean;
  /**
   * VIRTIO_F_RING_RESET: resets queue `index` and waits until the reset
   * completed; a promise when the device completes it later (spec 2.6.1).
   */
  resetQueue(index: number): void | Promise<void>;
  /** Sends an available buffer notification, with notification data when negotiated (spec 2.9). */
  notify(index: number, data?: number): void;
  /** Reads `length` bytes of device configuration at `offset`, in accesses the transport allows. */
  readConfig(offset: number, length: number): Uint8Array;
  /** Writes device configuration bytes at `offset`. */
  writeConfig(offset: number, data: Uint8Array): void;
  /** The configuration generation (spec 2.5.1). */
  configGeneration(): number;
  /** Registers the driver's interrupt handler; the transport decodes and acknowledges interrupts before calling it. */
  onInterrupt(handler: (cause: InterruptCause) => void): void;
}
