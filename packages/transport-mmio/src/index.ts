export { MmioTransport, type MmioInterruptLine, type MmioTransportOptions, type MmioTransportSnapshot, type MmioViolations } from './transport.js';
export { INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, MMIO_MAGIC_VALUE, MmioRegister, registerBlockSize, type MmioVersion } from './registers.js';
export {
  VIRTIO_MMIO_ACPI_HID,
  VIRTIO_MMIO_COMPATIBLE,
  deviceTreeNode,
  kernelCommandLineArgument,
  type MmioDeviceDescription,
  type MmioDeviceTreeNode,
} from './description.js';
