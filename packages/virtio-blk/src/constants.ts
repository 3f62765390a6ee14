/**
 * Names and values of the block device (spec 5.2), spelled as the spec and
 * linux/virtio_blk.h spell them.
 */

/** Maximum size of any single segment is in `size_max` (spec 5.2.3). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
/** Maximum number of segments in a request is in `seg_max`. */
export const VIRTIO_BLK_F_SEG_MAX = 2;
/** Disk-style geometry is in `geometry`. */
export const VIRTIO_BLK_F_GEOMETRY = 4;
/** The device is read-only. */
export const VIRTIO_BLK_F_RO = 5;
/** Block size of the disk is in `blk_size`. */
export const VIRTIO_BLK_F_BLK_SIZE = 6;
/** Cache flush command support. */
export const VIRTIO_BLK_F_FLUSH = 9;
/** The device exports information on optimal I/O alignment in `topology`. */
export const VIRTIO_BLK_F_TOPOLOGY = 10;
/** The driver can toggle the cache between writeback and writethrough through `writeback`. */
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
/** The device has more than one request queue (`num_queues`). */
export const VIRTIO_BLK_F_MQ = 12;
/** Discard command support, limits in `max_discard_sectors` / `max_discard_seg`. */
export const VIRTIO_BLK_F_DISCARD = 13;
/** Write zeroes command support, limits in `max_write_zeroes_sectors` / `max_write_zeroes_seg`. */
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;
/** Storage lifetime information (VIRTIO_BLK_T_GET_LIFETIME). */
export const VIRTIO_BLK_F_LIFETIME = 15;
/** Secure erase command support, limits in `max_secure_erase_sectors` / `max_secure_erase_seg`. */
export const VIRTIO_BLK_F_SECURE_ERASE = 16;

/** Request types (spec 5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
/** Write. */
export const VIRTIO_BLK_T_OUT = 1;
/** Flush the write-back cache. */
export const VIRTIO_BLK_T_FLUSH = 4;
/** Legacy synonym of VIRTIO_BLK_T_FLUSH (spec 5.2.6.4). */
export const VIRTIO_BLK_T_FLUSH_OUT = 5;
/** Fetch the device ID string. */
export const VIRTIO_BLK_T_GET_ID = 8;
/** Fetch storage lifetime information. */
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
/** Discard sectors. */
export const VIRTIO_BLK_T_DISCARD = 11;
/** Write zeroes to sectors. */
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
/** Securely erase sectors. */
export const VIRTIO_BLK_T_SECURE_ERASE = 14;

/** Request status (spec 5.2.6): success. */
export const VIRTIO_BLK_S_OK = 0;
/** Device or driver error. */
export const VIRTIO_BLK_S_IOERR = 1;
/** Request unsupported by the device. */
export const VIRTIO_BLK_S_UNSUPP = 2;

/** `unmap` flag of struct virtio_blk_discard_write_zeroes. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** Length of the device ID string returned by VIRTIO_BLK_T_GET_ID. */
export const VIRTIO_BLK_ID_BYTES = 20;

/** Size of struct virtio_blk_lifetime. */
export const VIRTIO_BLK_LIFETIME_BYTES = 6;

/** The protocol's unit: sectors are always 512 bytes (spec 5.2.5). */
export const SECTOR_SIZE = 512;

/** Size of the request header (type, reserved, sector). */
export const REQUEST_HEADER_BYTES = 16;

/** Size of struct virtio_blk_discard_write_zeroes. */
export const SEGMENT_DESCRIPTOR_BYTES = 16;
