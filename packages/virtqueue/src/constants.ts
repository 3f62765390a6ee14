/**
 * Names and values defined by the virtio 1.4 specification, spelled as the
 * spec spells them so that code can be read side by side with the text.
 */

/** Device status bits (spec 2.1). */
export const DeviceStatus = {
  /** The guest OS has found the device and recognised it as a valid virtio device. */
  ACKNOWLEDGE: 1,
  /** The guest OS knows how to drive the device. */
  DRIVER: 2,
  /** The driver is set up and ready to drive the device. */
  DRIVER_OK: 4,
  /** The driver has acknowledged all the features it understands; feature negotiation is complete. */
  FEATURES_OK: 8,
  /**
   * With VIRTIO_F_SUSPEND negotiated: the driver asks the device to suspend,
   * and the device reports it suspended (spec 3.4).
   */
  SUSPEND: 16,
  /** The device has experienced an error from which it cannot recover. */
  DEVICE_NEEDS_RESET: 64,
  /** Something went wrong in the guest and it has given up on the device. */
  FAILED: 128,
} as const;

/** Reserved feature bit numbers (spec 6). Use {@link featureBit} to turn one into a mask. */
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
/** Legacy: the device accepts arbitrary descriptor layouts (spec 6, implied by VERSION_1). */
export const VIRTIO_F_ANY_LAYOUT = 27;
/** The driver can use descriptors with VIRTQ_DESC_F_INDIRECT (spec 2.7.5.3, 2.8.7). */
export const VIRTIO_F_INDIRECT_DESC = 28;
/** used_event / avail_event notification suppression (spec 2.7.7, 2.7.10). */
export const VIRTIO_F_EVENT_IDX = 29;
/** Compliance with the virtio 1.x specification (spec 6). */
export const VIRTIO_F_VERSION_1 = 32;
/** The device is behind an IOMMU or needs platform-specific address translation. */
export const VIRTIO_F_ACCESS_PLATFORM = 33;
/** The packed virtqueue layout (spec 2.8). */
export const VIRTIO_F_RING_PACKED = 34;
/** Buffers are used by the device in the order they were made available (spec 2.8.23). */
export const VIRTIO_F_IN_ORDER = 35;
/** Memory accesses are ordered in a platform-specific way. */
export const VIRTIO_F_ORDER_PLATFORM = 36;
/** Single root I/O virtualisation. */
export const VIRTIO_F_SR_IOV = 37;
/** The driver passes extra data in its device notifications (spec 2.9). */
export const VIRTIO_F_NOTIFICATION_DATA = 38;
/** The driver uses device-supplied notification config data instead of the queue index. */
export const VIRTIO_F_NOTIF_CONFIG_DATA = 39;
/** Individual virtqueues can be reset and re-enabled (spec 2.6.1). */
export const VIRTIO_F_RING_RESET = 40;
/** The device exposes an administration virtqueue. */
export const VIRTIO_F_ADMIN_VQ = 41;
/** The driver can suspend the device through the SUSPEND status bit (spec 3.4). */
export const VIRTIO_F_SUSPEND = 43;

/** Returns the mask for feature bit `bit`. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** True when `features` has feature bit `bit` set. */
export function hasFeature(features: bigint, bit: number): boolean {
  return (features & (1n << BigInt(bit))) !== 0n;
}

/** Feature bits 0-23 and 50-127, which belong to the device type (spec 6); the rest are reserved. */
export const DEVICE_SPECIFIC_FEATURES = (featureBit(24) - 1n) | (((1n << 128n) - 1n) ^ (featureBit(50) - 1n));

/**
 * The reserved feature bits the virtqueue implementation supports over any
 * transport: INDIRECT_DESC, EVENT_IDX, VERSION_1, RING_PACKED and IN_ORDER.
 * NOTIFICATION_DATA and RING_RESET also need the transport's help, and the
 * others are not implemented.
 */
export const QUEUE_FEATURES =
  featureBit(VIRTIO_F_INDIRECT_DESC) |
  featureBit(VIRTIO_F_EVENT_IDX) |
  featureBit(VIRTIO_F_VERSION_1) |
  featureBit(VIRTIO_F_RING_PACKED) |
  featureBit(VIRTIO_F_IN_ORDER);

/** Virtio device IDs (spec 5). */
export const DeviceId = {
  /** Network device (spec 5.1). */
  NET: 1,
  /** Block device (spec 5.2). */
  BLOCK: 2,
  /** Console device (spec 5.3). */
  CONSOLE: 3,
  /** Entropy source (spec 5.4). */
  ENTROPY: 4,
  /** Traditional memory balloon (spec 5.5). */
  BALLOON: 5,
  /** SCSI host (spec 5.6). */
  SCSI: 8,
  /** 9P transport (no device section in the spec; used by virtio-9p). */
  NINEP: 9,
  /** GPU device (spec 5.7). */
  GPU: 16,
  /** Input device (spec 5.8). */
  INPUT: 18,
  /** Socket device (spec 5.10). */
  VSOCK: 19,
  /** Crypto device (spec 5.9). */
  CRYPTO: 20,
  /** IOMMU device (spec 5.13). */
  IOMMU: 23,
  /** Memory device (spec 5.15). */
  MEM: 24,
  /** Sound device (spec 5.14). */
  SOUND: 25,
  /** File system device (spec 5.11). */
  FS: 26,
  /** PMEM device (spec 5.19). */
  PMEM: 27,
  /** RPMB device (spec 5.12). */
  RPMB: 28,
  /** SCMI device (spec 5.17). */
  SCMI: 32,
  /** I2C adapter (spec 5.16). */
  I2C_ADAPTER: 34,
  /** CAN device (spec 5.20). */
  CAN: 36,
  /** GPIO device (spec 5.18). */
  GPIO: 41,
} as const;

/** Split and packed descriptor flags (spec 2.7.5, 2.8.1). */
export const VIRTQ_DESC_F_NEXT = 1;
/** The buffer is device-writable (otherwise device-readable). */
export const VIRTQ_DESC_F_WRITE = 2;
/** The buffer holds a table of indirect descriptors. */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Packed ring: the descriptor's available bit (spec 2.8.1). */
export const VIRTQ_DESC_F_AVAIL = 1 << 7;
/** Packed ring: the descriptor's used bit (spec 2.8.1). */
export const VIRTQ_DESC_F_USED = 1 << 15;

/** Split ring: the driver asks not to be interrupted (spec 2.7.6). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Split ring: the device asks not to be notified (spec 2.7.8). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Packed ring event suppression flags (spec 2.8.10). */
export const RING_EVENT_FLAGS_ENABLE = 0;
/** Packed ring: events are disabled. */
export const RING_EVENT_FLAGS_DISABLE = 1;
/** Packed ring: an event is wanted at the descriptor given by off_wrap (needs EVENT_IDX). */
export const RING_EVENT_FLAGS_DESC = 2;

/** The largest queue size any layout allows (spec 2.7, 2.8: 32768). */
export const MAX_QUEUE_SIZE = 32768;
