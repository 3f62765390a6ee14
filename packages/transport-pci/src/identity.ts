import { DeviceId } from '@virtio-ts/virtqueue';
import { VIRTIO_PCI_MODERN_DEVICE_ID_BASE } from './constants.js';

/** The largest virtio device ID a PCI device ID can carry: 0x1040 + 0x3f = 0x107f (spec 4.1.2). */
export const MAX_PCI_VIRTIO_DEVICE_TYPE = 0x3f;

/** Transitional PCI device IDs, for the device types that had legacy drivers (spec 4.1.2.1). */
const TRANSITIONAL_DEVICE_IDS: ReadonlyMap<number, number> = new Map([
  [DeviceId.NET, 0x1000],
  [DeviceId.BLOCK, 0x1001],
  [DeviceId.BALLOON, 0x1002],
  [DeviceId.CONSOLE, 0x1003],
  [DeviceId.SCSI, 0x1004],
  [DeviceId.ENTROPY, 0x1005],
  [DeviceId.NINEP, 0x1009],
]);

/**
 * Class codes (base class, subclass, programming interface) by device type,
 * as QEMU assigns them, so guest tools show a familiar function. Types not
 * listed get 0xff0000, "unassigned class".
 */
const CLASS_CODES: ReadonlyMap<number, number> = new Map([
  [DeviceId.NET, 0x020000],
  [DeviceId.BLOCK, 0x010000],
  [DeviceId.CONSOLE, 0x078000],
  [DeviceId.SCSI, 0x010000],
  [DeviceId.NINEP, 0x018000],
  [DeviceId.GPU, 0x038000],
  [DeviceId.INPUT, 0x098000],
  [DeviceId.VSOCK, 0x078000],
  [DeviceId.SOUND, 0x040100],
  [DeviceId.FS, 0x018000],
]);

/** Class code for "unassigned class" ([PCI] appendix D). */
export const PCI_CLASS_OTHERS = 0xff0000;

/** The PCI class code QEMU gives a virtio device of type `deviceType`. */
export function pciClassCode(deviceType: number): number {
  return CLASS_CODES.get(deviceType) ?? PCI_CLASS_OTHERS;
}

/**
 * The PCI device ID for a virtio device type (spec 4.1.2): 0x1040 + type, or
 * the transitional ID from the spec's table. Undefined when there is none: the
 * type does not fit the modern range, or has no transitional ID.
 */
export function pciDeviceId(deviceType: number, transitional: boolean): number | undefined {
  if (!Number.isInteger(deviceType) || deviceType < 1 || deviceType > MAX_PCI_VIRTIO_DEVICE_TYPE) return undefined;
  return transitional ? TRANSITIONAL_DEVICE_IDS.get(deviceType) : VIRTIO_PCI_MODERN_DEVICE_ID_BASE + deviceType;
}
