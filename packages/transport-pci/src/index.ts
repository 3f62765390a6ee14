export type { PciBar, PciBarKind, PciBarPurpose } from './bar.js';
export * from './constants.js';
export type { FunctionStateSnapshot, PciViolations } from './function-state.js';
export { MAX_PCI_VIRTIO_DEVICE_TYPE, PCI_CLASS_OTHERS, pciClassCode, pciDeviceId } from './identity.js';
export type { MsiSink } from './msix.js';
export { PciBarIndex } from './layout.js';
export { PciTransport, type IntxLine, type NotifyLayout, type PciTransportOptions, type PciTransportSnapshot } from './pci-transport.js';
export { formatLspciDump } from './dump.js';
