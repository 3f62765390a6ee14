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
  /** Vendor ID (16 bits, read-only). */
  VENDOR_ID: 0x00,
  /** Device ID (16 bits, read-only). */
  DEVICE_ID: 0x02,
  /** Command register (16 bits): decoding, bus mastering, INTx disable. */
  COMMAND: 0x04,
  /** Status register (16 bits): capability list, interrupt status. */
  STATUS: 0x06,
  /** Revision ID (8 bits). */
  REVISION_ID: 0x08,
  /** Class code (24 bits: programming interface, subclass, base class). */
  CLASS_PROG: 0x09,
  /** Cache Line Size (8 bits, writable). */
  CACHE_LINE_SIZE: 0x0c,
  /** Latency Timer (8 bits). */
  LATENCY_TIMER: 0x0d,
  /** Header Type (8 bits): 0, a single-function endpoint. */
  HEADER_TYPE: 0x0e,
  /** Base Address Register 0; BARs 1-5 follow every 4 bytes. */
  BASE_ADDRESS_0: 0x10,
  /** Subsystem Vendor ID (16 bits). */
  SUBSYSTEM_VENDOR_ID: 0x2c,
  /** Subsystem ID (16 bits): the virtio device type on transitional devices. */
  SUBSYSTEM_ID: 0x2e,
  /** Expansion ROM base address: none, reads 0. */
  ROM_ADDRESS: 0x30,
  /** Capabilities Pointer (8 bits): offset of the first capability. */
  CAPABILITY_LIST: 0x34,
  /** Interrupt Line (8 bits, writable, for the driver's use). */
  INTERRUPT_LINE: 0x3c,
  /** Interrupt Pin (8 bits): 1 (INTA#) with an INTx line, else 0. */
  INTERRUPT_PIN: 0x3d,
} as const;

/** Size of conventional configuration space; PCI Express extends it to 4 KiB. */
export const PCI_CONFIG_SPACE_SIZE = 0x100;
/** Size of PCI Express extended configuration space. */
export const PCIE_CONFIG_SPACE_SIZE = 0x1000;

/** Command register bits ([PCI] 6.2.2). */
export const PciCommand = {
  /** I/O Space enable: decode I/O BARs. */
  IO: 0x1,
  /** Memory Space enable: decode memory BARs. */
  MEMORY: 0x2,
  /** Bus Master enable: the function may write memory (DMA, MSI). */
  MASTER: 0x4,
  /** Interrupt Disable: INTx stays deasserted. */
  INTX_DISABLE: 0x400,
} as const;

/** Status register bits ([PCI] 6.2.3). */
export const PciStatus = {
  /** Interrupt Status: INTx is pending (whatever Interrupt Disable says). */
  INTERRUPT: 0x08,
  /** Capabilities List: the function has a capability list. */
  CAP_LIST: 0x10,
} as const;

/** Low bits of a base address register ([PCI] 6.2.5.1). */
export const PciBaseAddress = {
  /** Bit 0: an I/O BAR. */
  SPACE_IO: 0x1,
  /** Bits 2-1 = 10b: a 64-bit memory BAR, using the next register too. */
  MEM_TYPE_64: 0x4,
  /** Bit 3: prefetchable memory. */
  MEM_PREFETCH: 0x8,
} as const;

/** Capability IDs ([PCI] appendix H). */
export const PciCapabilityId = {
  /** PCI Power Management. */
  POWER_MANAGEMENT: 0x01,
  /** Vendor-specific: every virtio structure capability. */
  VENDOR: 0x09,
  /** PCI Express. */
  EXPRESS: 0x10,
  /** MSI-X. */
  MSIX: 0x11,
} as const;

/** Virtio structure types in virtio_pci_cap.cfg_type (spec 4.1.4). */
export const VirtioPciCap = {
  /** VIRTIO_PCI_CAP_COMMON_CFG: struct virtio_pci_common_cfg (spec 4.1.4.3). */
  COMMON_CFG: 1,
  /** VIRTIO_PCI_CAP_NOTIFY_CFG: the notification structure (spec 4.1.4.4). */
  NOTIFY_CFG: 2,
  /** VIRTIO_PCI_CAP_ISR_CFG: the ISR status (spec 4.1.4.5). */
  ISR_CFG: 3,
  /** VIRTIO_PCI_CAP_DEVICE_CFG: device-specific configuration (spec 4.1.4.6). */
  DEVICE_CFG: 4,
  /** VIRTIO_PCI_CAP_PCI_CFG: the configuration access window (spec 4.1.4.9). */
  PCI_CFG: 5,
  /** VIRTIO_PCI_CAP_SHARED_MEMORY_CFG: a shared memory region (spec 4.1.4.7). */
  SHARED_MEMORY_CFG: 8,
} as const;

/** Field offsets in struct virtio_pci_cap and its extensions (spec 4.1.4). */
export const VirtioPciCapField = {
  /** cfg_type: one of {@link VirtioPciCap}. */
  CFG_TYPE: 3,
  /** bar: the BAR holding the structure. */
  BAR: 4,
  /** id: tells apart several capabilities of one type (the shmid of a shared memory region). */
  ID: 5,
  /** offset: where the structure starts in the BAR (le32). */
  OFFSET: 8,
  /** length: the structure's length in bytes (le32). */
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
  /** device_feature_select (le32, RW). */
  DEVICE_FEATURE_SELECT: 0,
  /** device_feature (le32, R): 32 offered feature bits from page device_feature_select. */
  DEVICE_FEATURE: 4,
  /** driver_feature_select (le32, RW). */
  DRIVER_FEATURE_SELECT: 8,
  /** driver_feature (le32, RW): 32 accepted feature bits of page driver_feature_select. */
  DRIVER_FEATURE: 12,
  /** config_msix_vector (le16, RW). */
  CONFIG_MSIX_VECTOR: 16,
  /** num_queues (le16, R). */
  NUM_QUEUES: 18,
  /** device_status (u8, RW): 0 resets; reads 0 once the reset has finished. */
  DEVICE_STATUS: 20,
  /** config_generation (u8, R). */
  CONFIG_GENERATION: 21,
  /** queue_select (le16, RW): the queue the queue_* fields apply to. */
  QUEUE_SELECT: 22,
  /** queue_size (le16, RW). */
  QUEUE_SIZE: 24,
  /** queue_msix_vector (le16, RW). */
  QUEUE_MSIX_VECTOR: 26,
  /** queue_enable (le16, RW): 1 enables the queue. */
  QUEUE_ENABLE: 28,
  /** queue_notify_off (le16, R). */
  QUEUE_NOTIFY_OFF: 30,
  /** queue_desc (le64 as two le32): Descriptor Area address, low half. */
  QUEUE_DESC_LO: 32,
  /** queue_desc, high half. */
  QUEUE_DESC_HI: 36,
  /** queue_driver (le64 as two le32): Driver Area address, low half. */
  QUEUE_DRIVER_LO: 40,
  /** queue_driver, high half. */
  QUEUE_DRIVER_HI: 44,
  /** queue_device (le64 as two le32): Device Area address, low half. */
  QUEUE_DEVICE_LO: 48,
  /** queue_device, high half. */
  QUEUE_DEVICE_HI: 52,
  /** queue_notif_config_data (le16, R). */
  QUEUE_NOTIF_CONFIG_DATA: 56,
  /** queue_reset (le16, RW, VIRTIO_F_RING_RESET): 1 resets the queue; reads 1 while the reset is under way. */
  QUEUE_RESET: 58,
  /** admin_queue_index (le16, R, VIRTIO_F_ADMIN_VQ). */
  ADMIN_QUEUE_INDEX: 60,
  /** admin_queue_num (le16, R, VIRTIO_F_ADMIN_VQ). */
  ADMIN_QUEUE_NUM: 62,
  /** Size of the structure. */
  SIZE: 64,
} as const;

/** Offsets in the legacy I/O BAR of a transitional device (spec 4.1.4.10). */
export const LegacyIo = {
  /** Device Features bits 0:31 (le32, R). */
  HOST_FEATURES: 0,
  /** Driver Features bits 0:31 (le32, RW). */
  GUEST_FEATURES: 4,
  /** Queue Address (le32, RW): page frame number of the selected queue, 0 to disable it. */
  QUEUE_PFN: 8,
  /** Queue Size (le16, R): the selected queue's fixed size. */
  QUEUE_NUM: 12,
  /** Queue Select (le16, RW). */
  QUEUE_SEL: 14,
  /** Queue Notify (le16, W): the queue index. */
  QUEUE_NOTIFY: 16,
  /** Device Status (u8, RW): 0 resets. */
  STATUS: 18,
  /** ISR Status (u8, R): reading clears it. */
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
  /** A used buffer notification. */
  QUEUE: 0x1,
  /** A configuration change notification. */
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
  /** Message Control: table size minus one. */
  FLAGS_QSIZE: 0x07ff,
  /** Message Control: Function Mask. */
  FLAGS_MASKALL: 0x4000,
  /** Message Control: MSI-X Enable. */
  FLAGS_ENABLE: 0x8000,
  /** Size of one table entry. */
  ENTRY_SIZE: 16,
  /** Table entry: Message Address, low 32 bits. */
  ENTRY_LOWER_ADDR: 0,
  /** Table entry: Message Upper Address. */
  ENTRY_UPPER_ADDR: 4,
  /** Table entry: Message Data. */
  ENTRY_DATA: 8,
  /** Table entry: Vector Control. */
  ENTRY_VECTOR_CTRL: 12,
  /** Vector Control: Mask Bit. */
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
  /** Capability length. */
  CAP_SIZE: 8,
  /** PMC: version 3 of the specification; no D1, D2 or PME. */
  PMC_VERSION_3: 0x0003,
  /** PMCSR: PowerState field. */
  CTRL_STATE_MASK: 0x0003,
  /** PMCSR PowerState: D3hot. */
  CTRL_STATE_D3HOT: 0x0003,
  /** Going from D3hot to D0 keeps the function's state. */
  CTRL_NO_SOFT_RESET: 0x0008,
} as const;

/** PCI Express capability layout ([PCIe] 7.5.3), the subset a virtio function needs. */
export const PciExpress = {
  /** Offset of PCI Express Capabilities. */
  FLAGS: 2,
  /** Offset of Device Capabilities. */
  DEVCAP: 4,
  /** Offset of Device Control. */
  DEVCTL: 8,
  /** Capability length of a version 2 structure. */
  CAP_SIZE_V2: 0x3c,
  /** PCI Express Capabilities: capability version 2. */
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
