/**
 * The virtio-mmio register map (spec 4.2.2 for version 2, 4.2.4 for the legacy
 * version 1), with the spec's register names.
 */

/** Register offsets from the device's base address (spec 4.2.2, table "MMIO Device Register Layout"). */
export const MmioRegister = {
  /** R: 0x74726976, "virt" in little-endian ASCII. */
  MagicValue: 0x000,
  /** R: 2, or 1 for the legacy layout. */
  Version: 0x004,
  /** R: virtio device ID (spec 5). */
  DeviceID: 0x008,
  /** R: virtio subsystem vendor ID. */
  VendorID: 0x00c,
  /** R: 32 device feature bits, selected by DeviceFeaturesSel. */
  DeviceFeatures: 0x010,
  /** W: selects the 32-bit page of DeviceFeatures. */
  DeviceFeaturesSel: 0x014,
  /** W: 32 driver feature bits, selected by DriverFeaturesSel. */
  DriverFeatures: 0x020,
  /** W: selects the 32-bit page of DriverFeatures. */
  DriverFeaturesSel: 0x024,
  /** W, legacy only: the guest page size in bytes, the unit of QueuePFN. */
  GuestPageSize: 0x028,
  /** W: selects the queue the Queue* registers apply to. */
  QueueSel: 0x030,
  /** R: maximum size of the selected queue, 0 if it does not exist. */
  QueueSizeMax: 0x034,
  /** W: size of the selected queue (QueueNum in the legacy layout). */
  QueueSize: 0x038,
  /** W, legacy only: alignment of the selected queue's used ring, in bytes. */
  QueueAlign: 0x03c,
  /** RW, legacy only: guest page number of the selected queue; 0 stops the queue. */
  QueuePFN: 0x040,
  /** RW, version 2: 1 enables the selected queue, 0 stops it. */
  QueueReady: 0x044,
  /** W: available buffer notification (queue index, or notification data). */
  QueueNotify: 0x050,
  /** R: why the interrupt line is asserted (bit 0 used buffer, bit 1 configuration change). */
  InterruptStatus: 0x060,
  /** W: clears the InterruptStatus bits written. */
  InterruptACK: 0x064,
  /** RW: device status (spec 2.1); 0 resets the device. */
  Status: 0x070,
  /** W, version 2: Descriptor Area address, low 32 bits. */
  QueueDescLow: 0x080,
  /** W, version 2: Descriptor Area address, high 32 bits. */
  QueueDescHigh: 0x084,
  /** W, version 2: Driver Area address, low 32 bits. */
  QueueDriverLow: 0x090,
  /** W, version 2: Driver Area address, high 32 bits. */
  QueueDriverHigh: 0x094,
  /** W, version 2: Device Area address, low 32 bits. */
  QueueDeviceLow: 0x0a0,
  /** W, version 2: Device Area address, high 32 bits. */
  QueueDeviceHigh: 0x0a4,
  /** W, version 2: selects the shared memory region the SHM* registers describe. */
  SHMSel: 0x0ac,
  /** R, version 2: selected region's length, low 32 bits (all ones if absent). */
  SHMLenLow: 0x0b0,
  /** R, version 2: selected region's length, high 32 bits. */
  SHMLenHigh: 0x0b4,
  /** R, version 2: selected region's guest-physical base, low 32 bits (all ones if absent). */
  SHMBaseLow: 0x0b8,
  /** R, version 2: selected region's guest-physical base, high 32 bits. */
  SHMBaseHigh: 0x0bc,
  /** RW, version 2 with VIRTIO_F_RING_RESET: 1 resets the selected queue; reads 1 while a reset is under way. */
  QueueReset: 0x0c0,
  /** R, version 2: configuration generation (spec 2.5.1). */
  ConfigGeneration: 0x0fc,
  /** RW: the device-specific configuration space starts here. */
  Config: 0x100,
} as const;

/**
 * The smallest register block for a device with `configSize` bytes of
 * configuration: a power of two holding the 0x100 bytes of control registers
 * and the configuration space, and at least the 0x200 bytes of the spec's example (spec 4.2.1).
 */
export function registerBlockSize(configSize: number): number {
  return Math.max(0x200, 2 ** Math.ceil(Math.log2(MmioRegister.Config + configSize)));
}

/** The value of MagicValue (spec 4.2.2.1). */
export const MMIO_MAGIC_VALUE = 0x74726976;

/** InterruptStatus bit 0: the device used a buffer in at least one queue (spec 4.2.2). */
export const INTERRUPT_USED_BUFFER = 1;
/** InterruptStatus bit 1: the device configuration changed (spec 4.2.2). */
export const INTERRUPT_CONFIG_CHANGE = 2;

/** The register layout versions: 2 (spec 4.2.2) and the legacy 1 (spec 4.2.4). */
export type MmioVersion = 1 | 2;

/** Access bits in a {@link registerAccess} table. */
export const READ = 1;
/** See {@link READ}. */
export const WRITE = 2;

const R = READ;
const W = WRITE;
const RW = READ | WRITE;

/** [offset, access, versions] for every control register. */
const REGISTERS: readonly (readonly [number, number, readonly MmioVersion[]])[] = [
  [MmioRegister.MagicValue, R, [1, 2]],
  [MmioRegister.Version, R, [1, 2]],
  [MmioRegister.DeviceID, R, [1, 2]],
  [MmioRegister.VendorID, R, [1, 2]],
  [MmioRegister.DeviceFeatures, R, [1, 2]],
  [MmioRegister.DeviceFeaturesSel, W, [1, 2]],
  [MmioRegister.DriverFeatures, W, [1, 2]],
  [MmioRegister.DriverFeaturesSel, W, [1, 2]],
  [MmioRegister.GuestPageSize, W, [1]],
  [MmioRegister.QueueSel, W, [1, 2]],
  [MmioRegister.QueueSizeMax, R, [1, 2]],
  [MmioRegister.QueueSize, W, [1, 2]],
  [MmioRegister.QueueAlign, W, [1]],
  [MmioRegister.QueuePFN, RW, [1]],
  [MmioRegister.QueueReady, RW, [2]],
  [MmioRegister.QueueNotify, W, [1, 2]],
  [MmioRegister.InterruptStatus, R, [1, 2]],
  [MmioRegister.InterruptACK, W, [1, 2]],
  [MmioRegister.Status, RW, [1, 2]],
  [MmioRegister.QueueDescLow, W, [2]],
  [MmioRegister.QueueDescHigh, W, [2]],
  [MmioRegister.QueueDriverLow, W, [2]],
  [MmioRegister.QueueDriverHigh, W, [2]],
  [MmioRegister.QueueDeviceLow, W, [2]],
  [MmioRegister.QueueDeviceHigh, W, [2]],
  [MmioRegister.SHMSel, W, [2]],
  [MmioRegister.SHMLenLow, R, [2]],
  [MmioRegister.SHMLenHigh, R, [2]],
  [MmioRegister.SHMBaseLow, R, [2]],
  [MmioRegister.SHMBaseHigh, R, [2]],
  [MmioRegister.QueueReset, RW, [2]],
  [MmioRegister.ConfigGeneration, R, [2]],
];

/**
 * For each 32-bit word of the control register block (offset / 4), whether
 * `version` has a register there and which directions it allows (spec 4.2.2.2:
 * drivers do not write read-only registers nor read write-only ones).
 */
export function registerAccess(version: MmioVersion): Uint8Array {
  const table = new Uint8Array(MmioRegister.Config / 4);
  for (const [offset, access, versions] of REGISTERS) {
    if (versions.includes(version)) table[offset / 4] = access;
  }
  return table;
}
