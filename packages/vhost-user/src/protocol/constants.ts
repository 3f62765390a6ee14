/**
 * Names and numbers of the vhost-user protocol, as QEMU's
 * docs/interop/vhost-user.rst defines them.
 */

/** Front-end requests (the "Front-end message types" section). */
export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
} as const;

/** Requests the back-end sends on the back-end channel (SET_BACKEND_REQ_FD). */
export const BackendRequest = {
  IOTLB_MSG: 1,
  CONFIG_CHANGE_MSG: 2,
  VRING_HOST_NOTIFIER_MSG: 3,
} as const;

/** Header flags: the version in bits 0-1, REPLY, NEED_REPLY. */
export const HeaderFlags = {
  VERSION: 0x1,
  VERSION_MASK: 0x3,
  REPLY: 0x4,
  NEED_REPLY: 0x8,
} as const;

/** Size of the message header: request, flags and size, three u32. */
export const HEADER_SIZE = 12;

/** Feature bit 30, reused by vhost-user to announce protocol-feature negotiation. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
/** Feature bit 26: the front-end logs dirty pages for migration (not offered here). */
export const VHOST_F_LOG_ALL = 26;

/** Protocol feature bits ("Protocol features" section). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;

/** SET_VRING_KICK/CALL/ERR payload: bits 0-7 the ring index, bit 8 "no descriptor attached". */
export const VRING_INDEX_MASK = 0xff;
/** The "invalid FD" flag of SET_VRING_KICK/CALL/ERR. */
export const VRING_NOFD_MASK = 0x100;

/** Regions one SET_MEM_TABLE carries (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MEM_TABLE_MAX_REGIONS = 8;
/** Largest configuration space GET_CONFIG/SET_CONFIG may address (VHOST_USER_MAX_CONFIG_SIZE). */
export const MAX_CONFIG_SIZE = 256;
/** SET_CONFIG flag: the write comes from live migration and may set read-only fields. */
export const CONFIG_FLAG_MIGRATION = 1;

/** Printable names of the requests, for logs. */
export const requestName: ReadonlyMap<number, string> = new Map(Object.entries(Request).map(([name, id]) => [id, name]));
