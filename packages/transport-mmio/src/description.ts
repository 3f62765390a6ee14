/**
 * How a VMM tells the guest about an MMIO device, which has no discovery
 * mechanism of its own (spec 4.2.1).
 */

/** Where a virtio-mmio device sits: what a VMM turns into a device-tree node, an ACPI device or a kernel argument. */
export interface MmioDeviceDescription {
  /** Guest-physical address of the register block. */
  readonly baseAddress: number;
  /** Size of the register block in bytes (control registers plus configuration space). */
  readonly size: number;
  /** The interrupt line's number (GSI on x86, SPI on Arm). */
  readonly interrupt: number;
  /** Virtio device ID, for naming. */
  readonly deviceType: number;
}

/** The device-tree `compatible` string for virtio-mmio (spec 4.2.1). */
export const VIRTIO_MMIO_COMPATIBLE = 'virtio,mmio';

/** The ACPI _HID Linux's virtio_mmio driver matches. */
export const VIRTIO_MMIO_ACPI_HID = 'LNRO0005';

/**
 * The Linux kernel command-line argument that instantiates the device,
 * `virtio_mmio.device=<size>@<base>:<irq>` (Linux's virtio_mmio module
 * parameter; needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
 */
export function kernelCommandLineArgument(description: MmioDeviceDescription): string {
  return `virtio_mmio.device=${hex(description.size)}@${hex(description.baseAddress)}:${description.interrupt}`;
}

/** A device-tree node for the device, in the spec's suggested binding (spec 4.2.1). */
export interface MmioDeviceTreeNode {
  /** Node name: `virtio_mmio@<base in hex>`. */
  readonly name: string;
  /** `compatible` property. */
  readonly compatible: typeof VIRTIO_MMIO_COMPATIBLE;
  /** `reg` property as (address, size) with two cells each: [base high, base low, size high, size low]. */
  readonly reg: readonly [number, number, number, number];
  /** The interrupt number; the VMM encodes it in the `interrupts` cells its interrupt controller expects. */
  readonly interrupt: number;
}

/** The device-tree node for `description` (#address-cells = #size-cells = 2). */
export function deviceTreeNode(description: MmioDeviceDescription): MmioDeviceTreeNode {
  const { baseAddress, size } = description;
  return {
    name: `virtio_mmio@${baseAddress.toString(16)}`,
    compatible: VIRTIO_MMIO_COMPATIBLE,
    reg: [Math.floor(baseAddress / 2 ** 32), baseAddress >>> 0, Math.floor(size / 2 ** 32), size >>> 0],
    interrupt: description.interrupt,
  };
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}
