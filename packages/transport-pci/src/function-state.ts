import type { QueueSlot, VirtioCore } from '@virtio-ts/virtqueue';
import { VIRTIO_MSI_NO_VECTOR } from './constants.js';

/** Counts of driver accesses the PCI transport ignored (the status machine keeps its own in `core.violations`). */
export interface PciViolations {
  /** Accesses of a wrong width, misaligned, outside every register, or to a BAR the function does not decode. */
  access: number;
  /** Writes to read-only registers, or of values a register refuses. */
  write: number;
  /** Notifications while bus mastering is off, and MSI messages to addresses the platform cannot have. */
  dma: number;
}

/** The registers of {@link VirtioFunctionState}, saved. */
export interface FunctionStateSnapshot {
  /** The driver uses the legacy interface. */
  readonly legacy: boolean;
  /** queue_msix_vector of each queue. */
  readonly queueVectors: readonly number[];
  /** config_msix_vector. */
  readonly configVector: number;
  /** queue_select. */
  readonly queueSelect: number;
  /** device_feature_select. */
  readonly deviceFeatureSelect: number;
  /** driver_feature_select. */
  readonly driverFeatureSelect: number;
  /** ISR status. */
  readonly isr: number;
  /** The 8-bit config_generation last presented. */
  readonly generation: number;
  /** The device's configuration generation when config_generation was last advanced. */
  readonly generationSeen: number;
}

/** What the register blocks ask of the transport around them. */
export interface FunctionHooks {
  /** The ISR status changed: re-evaluate the INTx line. */
  isrChanged(): void;
  /** An available buffer notification arrived through a register. */
  notify(index: number, data?: number): void;
}

/**
 * The virtio state of a PCI function that both of its register interfaces
 * (common configuration and the legacy I/O header) share: feature and queue
 * selectors, MSI-X vector mapping (spec 4.1.5.1.2), the ISR status and the
 * 8-bit configuration generation.
 */
export class VirtioFunctionState {
  /** The status machine. */
  readonly core: VirtioCore;
  /** Accesses ignored so far. */
  readonly violations: PciViolations = { access: 0, write: 0, dma: 0 };
  /** queue_msix_vector per queue. */
  readonly queueVectors: Uint16Array;
  /** Number of MSI-X vectors (0 without an MSI-X capability). */
  readonly vectorCount: number;
  /** The hooks into the transport. */
  readonly hooks: FunctionHooks;
  /** config_msix_vector. */
  configVector = VIRTIO_MSI_NO_VECTOR;
  /** queue_select. */
  queueSelect = 0;
  /** device_feature_select. */
  deviceFeatureSelect = 0;
  /** driver_feature_select. */
  driverFeatureSelect = 0;
  /** ISR status (spec 4.1.4.5). */
  isr = 0;
  private generation = 0;
  private generationSeen = 0;

  /** State for `core` with `vectorCount` MSI-X vectors. */
  constructor(core: VirtioCore, vectorCount: number, hooks: FunctionHooks) {
    this.core = core;
    this.vectorCount = vectorCount;
    this.hooks = hooks;
    this.queueVectors = new Uint16Array(core.queueCount).fill(VIRTIO_MSI_NO_VECTOR);
  }

  /** The selected queue if it exists (max size above 0). */
  selectedQueue(): Readonly<QueueSlot> | undefined {
    const slot = this.core.queueSlot(this.queueSelect);
    return slot !== undefined && slot.maxSize > 0 ? slot : undefined;
  }

  /**
   * The vector a driver's mapping request results in: the vector if it is in
   * the table, else NO_VECTOR, which is how a device reports a mapping failure
   * (spec 4.1.5.1.2.1).
   */
  mapVector(value: number): number {
    return value < this.vectorCount ? value : VIRTIO_MSI_NO_VECTOR;
  }

  /** A device_status write; 0 resets the device and everything the transport keeps for it (spec 4.1.4.3.1). */
  writeStatus(value: number): void {
    this.core.writeStatus(value);
    if ((value & 0xff) === 0) this.resetVirtio();
  }

  /** Reads ISR status, which clears it and deasserts INTx (spec 4.1.4.5). */
  readIsr(): number {
    const value = this.isr;
    if (value !== 0) {
      this.isr = 0;
      this.hooks.isrChanged();
    }
    return value;
  }

  /**
   * The 8-bit config_generation. It advances by one whenever the device's
   * generation counter moved since it was last read, so it never wraps back to
   * a value the driver saw however many changes happened in between (the
   * advice of spec 4.1.4.3.1).
   */
  configGeneration(): number {
    if (this.core.configGeneration !== this.generationSeen) {
      this.generationSeen = this.core.configGeneration;
      this.generation = (this.generation + 1) & 0xff;
    }
    return this.generation;
  }

  /** The selectors, vectors, ISR and generation, and which interface the driver uses. */
  snapshot(): FunctionStateSnapshot {
    return {
      legacy: this.core.legacy,
      queueVectors: [...this.queueVectors],
      configVector: this.configVector,
      queueSelect: this.queueSelect,
      deviceFeatureSelect: this.deviceFeatureSelect,
      driverFeatureSelect: this.driverFeatureSelect,
      isr: this.isr,
      generation: this.generation,
      generationSeen: this.generationSeen,
    };
  }

  /** Loads a {@link snapshot}; the transport then restores the status machine and re-evaluates INTx. */
  restore(saved: FunctionStateSnapshot): void {
    if (saved.queueVectors.length !== this.queueVectors.length) {
      throw new RangeError(`snapshot of ${saved.queueVectors.length} queues restored into a device with ${this.queueVectors.length}`);
    }
    this.core.legacy = saved.legacy;
    this.queueVectors.set(saved.queueVectors);
    this.configVector = saved.configVector;
    this.queueSelect = saved.queueSelect;
    this.deviceFeatureSelect = saved.deviceFeatureSelect;
    this.driverFeatureSelect = saved.driverFeatureSelect;
    this.isr = saved.isr & 0x3;
    this.generation = saved.generation & 0xff;
    this.generationSeen = saved.generationSeen;
  }

  /** Device reset: unmap every event (spec 4.1.5.1.2.1), clear selectors and ISR status. */
  resetVirtio(): void {
    this.queueVectors.fill(VIRTIO_MSI_NO_VECTOR);
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.queueSelect = 0;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    if (this.isr !== 0) {
      this.isr = 0;
      this.hooks.isrChanged();
    }
  }
}
