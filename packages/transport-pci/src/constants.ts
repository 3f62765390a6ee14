/**
 * Register offsets and values of PCI configuration space ([PCI] 6.1, 6.7, 6.8;
 * Linux's pci_regs.h) and of the virtio PCI structures (spec 4.1; Linux's
 * virtio_pci.h), named as those define them.
 */

/** PCI Vendor ID of every virtio device (spec 4.1.2). */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
/** Modern device IDs are this plus the virtio device ID (spec 4.1.2). */
export const VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040;
/** Value of config_msix_vector / queue_msix_vector meaning "no vector" (spec 4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Offsets in the type-0 configuration header ([PCI] 6.1). */
export const PciConfig = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BASE_ADDRESS_0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/** Size of conventional configuration space; PCI Express extends it to 4 KiB. */
export const PCI_CONFIG_SPACE_SIZE = 0x100;
/** Size of PCI Express extended configuration space. */
export const PCIE_CONFIG_SPACE_SIZE = 0x1000;

/** Command register bits ([PCI] 6.2.2). */
export const PciCommand = {
  IO: 0x1,
  MEMORY: 0x2,
  MASTER: 0x4,
  INTX_DISABLE: 0x400,
} as const;

/** Status register bits ([PCI] 6.2.3). */
export const PciStatus = {
  INTERRUPT: 0x08,
  CAP_LIST: 0x10,
} as const;

/** Low bits of a base address register ([PCI] 6.2.5.1). */
export const PciBaseAddress = {
  SPACE_IO: 0x1,
  MEM_TYPE_64: 0x4,
  MEM_PREFETCH: 0x8,
} as const;

/** Capability IDs ([PCI] appendix H). */
export const PciCapabilityId = {
  POWER_MANAGEMENT: 0x01,
  VENDOR: 0x09,
  EXPRESS: 0x10,
  MSIX: 0x11,
} as const;

/** Virtio structure types in virtio_pci_cap.cfg_type (spec 4.1.4). */
export const VirtioPciCap = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
  SHARED_MEMORY_CFG: 8,
} as const;

/** Field offsets in struct virtio_pci_cap and its extensions (spec 4.1.4). */
export const VirtioPciCapField = {
  CFG_TYPE: 3,
  BAR: 4,
  ID: 5,
  OFFSET: 8,
  LENGTH: 12,
  /** virtio_pci_notify_cap.notify_off_multiplier. */
  NOTIFY_OFF_MULTIPLIER: 16,
  /** virtio_pci_cfg_cap.pci_cfg_data. */
  PCI_CFG_DATA: 16,
  /** virtio_pci_cap64.offset_hi. */
  OFFSET_HI: 16,
  /** virtio_pci_cap64.length_hi. */
  LENGTH_HI: 20,
} as const;

/** Offsets in struct virtio_pci_common_cfg (spec 4.1.4.3). */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0,
  DEVICE_FEATURE: 4,
  DRIVER_FEATURE_SELECT: 8,
  DRIVER_FEATURE: 12,
  CONFIG_MSIX_VECTOR: 16,
  NUM_QUEUES: 18,
  DEVICE_STATUS: 20,
  CONFIG_GENERATION: 21,
  QUEUE_SELECT: 22,
  QUEUE_SIZE: 24,
  QUEUE_MSIX_VECTOR: 26,
  QUEUE_ENABLE: 28,
  QUEUE_NOTIFY_OFF: 30,
  QUEUE_DESC_LO: 32,
  QUEUE_DESC_HI: 36,
  QUEUE_DRIVER_LO: 40,
  QUEUE_DRIVER_HI: 44,
  QUEUE_DEVICE_LO: 48,
  QUEUE_DEVICE_HI: 52,
  QUEUE_NOTIF_CONFIG_DATA: 56,
  QUEUE_RESET: 58,
  ADMIN_QUEUE_INDEX: 60,
  ADMIN_QUEUE_NUM: 62,
  /** Size of the structure. */
  SIZE: 64,
} as const;

/** Offsets in the legacy I/O BAR of a transitional device (spec 4.1.4.10). */
export const LegacyIo = {
  HOST_FEATURES: 0,
  GUEST_FEATURES: 4,
  QUEUE_PFN: 8,
  QUEUE_NUM: 12,
  QUEUE_SEL: 14,
  QUEUE_NOTIFY: 16,
  STATUS: 18,
  ISR: 19,
  /** Present only while MSI-X is enabled. */
  MSI_CONFIG_VECTOR: 20,
  /** Present only while MSI-X is enabled. */
  MSI_QUEUE_VECTOR: 22,
} as const;

/** Legacy queue addresses are page frame numbers of this many bytes, and the used ring is aligned to it (spec 4.1.5.1.3.1). */
export const LEGACY_QUEUE_ALIGN = 4096;

/** ISR status bits (spec 4.1.4.5). */
export const IsrStatus = {
  QUEUE: 0x1,
  CONFIG: 0x2,
} as const;

/** MSI-X capability layout ([PCI] 6.8.2). */
export const Msix = {
  /** Offset of Message Control in the capability. */
  FLAGS: 2,
  /** Offset of the Table Offset/BIR dword. */
  TABLE: 4,
  /** Offset of the PBA Offset/BIR dword. */
  PBA: 8,
  /** Capability length. */
  CAP_SIZE: 12,
  FLAGS_QSIZE: 0x07ff,
  FLAGS_MASKALL: 0x4000,
  FLAGS_ENABLE: 0x8000,
  /** Size of one table entry. */
  ENTRY_SIZE: 16,
  ENTRY_LOWER_ADDR: 0,
  ENTRY_UPPER_ADDR: 4,
  ENTRY_DATA: 8,
  ENTRY_VECTOR_CTRL: 12,
  ENTRY_CTRL_MASKBIT: 0x1,
  /** The most vectors a function can have. */
  MAX_VECTORS: 2048,
} as const;

/** Power Management capability layout ([PCI-PM] 3.2). */
export const PciPm = {
  /** Offset of Power Management Capabilities (PMC). */
  PMC: 2,
  /** Offset of Power Management Control/Status (PMCSR). */
  CTRL: 4,
  CAP_SIZE: 8,
  /** PMC: version 3 of the specification; no D1, D2 or PME. */
  PMC_VERSION_3: 0x0003,
  CTRL_STATE_MASK: 0x0003,
  CTRL_STATE_D3HOT: 0x0003,
  /** Going from D3hot to D0 keeps the function's state. */
  CTRL_NO_SOFT_RESET: 0x0008,
} as const;

/** PCI Express capability layout ([PCIe] 7.5.3), the subset a virtio function needs. */
export const PciExpress = {
  FLAGS: 2,
  DEVCAP: 4,
  DEVCTL: 8,
  /** Capability length of a version 2 structure. */
  CAP_SIZE_V2: 0x3c,
  FLAGS_VERSION_2: 0x0002,
  /** Device/Port Type: Root Complex Integrated Endpoint. */
  FLAGS_TYPE_RC_END: 0x0090,
  /** Device Capabilities: Role-Based Error Reporting, which every PCI Express 1.1+ function has. */
  DEVCAP_RBER: 0x8000,
  /** Device Control after reset: relaxed ordering and no snoop enabled, 512-byte read requests. */
  DEVCTL_DEFAULT: 0x2810,
  /** Device Control bits a driver may set on a function that advertises nothing optional. */
  DEVCTL_WRITABLE: 0x78ff,
} as const;
