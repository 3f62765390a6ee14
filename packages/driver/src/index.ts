export type { DriverTransport, InterruptCause } from './transport.js';
export { CoreTransport, type CoreTransportOptions } from './transports/core.js';
export { LOOPBACK_DEVICE_ID, LoopbackDevice, type LoopbackDeviceOptions } from './loopback-device.js';
export { MmioDriverTransport, type MmioDriverTransportOptions, type MmioRegisterBlock } from './transports/mmio.js';
export { PciDriverTransport, PciLegacyDriverTransport, legacyPciQueueLayout, type PciDriverOptions, type PciFunctionAccess } from './transports/pci.js';
export { CcwDriverTransport, type CcwDriverTransportOptions, type CcwHypercallRegisters, type CcwInterruptionResponse, type CcwSubchannel } from './transports/ccw.js';
