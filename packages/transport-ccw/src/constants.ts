/**
 * Values of virtio over channel I/O (spec 4.3) and of the parts of the s390
 * channel subsystem architecture it relies on (the Principles of Operation's
 * CCW, SCSW and sense formats), spelled as those documents spell them.
 */

/** Control unit type a virtio-ccw proxy device reports in SENSE ID (spec 4.3.1). */
export const VIRTIO_CCW_CU_TYPE = 0x3832;

/** Channel command codes: the basic commands every channel device answers, and the virtio ones (spec 4.3.1.1). */
export const CcwCommand = {
  /** NO-OPERATION. */
  NOOP: 0x03,
  /** BASIC SENSE: stores the sense data of the last unit check. */
  BASIC_SENSE: 0x04,
  /** TRANSFER IN CHANNEL: continue the channel program at the CCW's data address. */
  TIC: 0x08,
  /** SENSE ID: control unit type and model. */
  SENSE_ID: 0xe4,
  /** Where a virtqueue lives (struct vq_info_block). */
  SET_VQ: 0x13,
  /** Reset the virtio device. */
  VDEV_RESET: 0x33,
  /** Classic queue indicators: the address of a 64-bit indicator area. */
  SET_IND: 0x43,
  /** Configuration change indicators: the address of a 64-bit indicator area. */
  SET_CONF_IND: 0x53,
  /** Two-stage queue indicators for adapter interruptions (struct virtio_thinint_area). */
  SET_IND_ADAPTER: 0x73,
  /** 32 device feature bits (struct virtio_feature_desc). */
  READ_FEAT: 0x12,
  /** 32 driver feature bits (struct virtio_feature_desc). */
  WRITE_FEAT: 0x11,
  /** Read the configuration space. */
  READ_CONF: 0x22,
  /** Write the configuration space. */
  WRITE_CONF: 0x21,
  /** Write the device status byte. */
  WRITE_STATUS: 0x31,
  /** A virtqueue's maximum size (struct vq_config_block). */
  READ_VQ_CONF: 0x32,
  /** Select the transport revision (struct virtio_rev_info). */
  SET_VIRTIO_REV: 0x83,
  /** Read the device status byte (revision 2). */
  READ_STATUS: 0x72,
} as const;

/** Flags of a format-1 CCW. */
export const CcwFlag = {
  /** Chain data: the data area continues in the next CCW. */
  CD: 0x80,
  /** Chain command: after this CCW, execute the next one. */
  CC: 0x40,
  /** Suppress length indication. */
  SLI: 0x20,
  /** Skip: a read transfers no data to memory. */
  SKIP: 0x10,
  /** Program-controlled interruption. */
  PCI: 0x08,
  /** Indirect data addressing: the data address points to a list of IDAWs. */
  IDA: 0x04,
  /** Suspend the channel program before this CCW. */
  S: 0x02,
  /** Modified indirect data addressing. */
  MIDA: 0x01,
} as const;

/** The SCSW's device-status byte (the "unit status" of older manuals; not virtio's device status). */
export const UnitStatus = {
  ATTENTION: 0x80,
  STATUS_MODIFIER: 0x40,
  CONTROL_UNIT_END: 0x20,
  BUSY: 0x10,
  CHANNEL_END: 0x08,
  DEVICE_END: 0x04,
  UNIT_CHECK: 0x02,
  UNIT_EXCEPTION: 0x01,
} as const;

/** The SCSW's subchannel-status byte. */
export const SubchannelStatus = {
  PROGRAM_CONTROLLED_INTERRUPTION: 0x80,
  INCORRECT_LENGTH: 0x40,
  PROGRAM_CHECK: 0x20,
  PROTECTION_CHECK: 0x10,
  CHANNEL_DATA_CHECK: 0x08,
  CHANNEL_CONTROL_CHECK: 0x04,
  INTERFACE_CONTROL_CHECK: 0x02,
  CHAINING_CHECK: 0x01,
} as const;

/** The SCSW's status-control field. */
export const StatusControl = {
  ALERT: 0x10,
  INTERMEDIATE: 0x08,
  PRIMARY: 0x04,
  SECONDARY: 0x02,
  STATUS_PENDING: 0x01,
} as const;

/** Sense byte 0 bits. */
export const SenseByte0 = {
  /** The device does not support the command, or its data is invalid. */
  COMMAND_REJECT: 0x80,
} as const;

/** Condition codes of START SUBCHANNEL. */
export const ConditionCode = {
  /** The start function was initiated (here: the channel program ran and its status is pending). */
  STARTED: 0,
  /** Status is pending: the driver must TEST SUBCHANNEL first. */
  STATUS_PENDING: 1,
  /** The subchannel is busy: a channel program is running (a START SUBCHANNEL from inside one). */
  BUSY: 2,
  /** The subchannel is not operational (not enabled). */
  NOT_OPERATIONAL: 3,
} as const;

/** Size of the sense data BASIC SENSE stores. */
export const SENSE_DATA_SIZE = 32;
/** Size of the SENSE ID data (spec 4.3.1: bytes 0-255). */
export const SENSE_ID_SIZE = 256;

/** Revisions of the virtio-ccw transport (spec 4.3.2.1). */
export const VirtioCcwRevision = {
  /** Legacy interface (transitional devices only). */
  LEGACY: 0,
  /** Virtio 1. */
  VIRTIO_1: 1,
  /** Virtio 1 with CCW_CMD_READ_STATUS. */
  READ_STATUS: 2,
} as const;

/** DIAGNOSE 0x500 subcode of a virtio-ccw available buffer notification (spec 4.3.3.2). */
export const KVM_S390_VIRTIO_CCW_NOTIFY = 3;

/** Sizes of the communication blocks (spec 4.3.2): all big-endian except the feature word. */
export const BlockSize = {
  /** struct vq_info_block. */
  VQ_INFO: 32,
  /** struct vq_info_block_legacy (revision 0). */
  VQ_INFO_LEGACY: 16,
  /** struct vq_config_block. */
  VQ_CONFIG: 4,
  /** struct virtio_feature_desc (exactly 5 bytes, no padding). */
  FEATURE_DESC: 5,
  /** struct virtio_thinint_area (exactly 25 bytes, no padding). */
  THININT_AREA: 25,
  /** struct virtio_rev_info without data. */
  REV_INFO: 4,
  /** The guest address of an indicator area, a be64. */
  INDICATOR_ADDRESS: 8,
  /** The device status byte. */
  STATUS: 1,
} as const;

/** Classic queue indicators are one 64-bit value per device, so at most 64 queues (spec 4.3.2.6.1). */
export const CLASSIC_INDICATOR_BITS = 64;

/** The largest I/O interruption subclass. */
export const MAX_ISC = 7;

/** The errno DIAGNOSE 0x500 returns (negated, in GPR 2) for a notification it cannot deliver. */
export const EINVAL = 22;
