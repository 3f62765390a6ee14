import {
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
} from '@virtio-ts/virtqueue';
import type { BlockBackend } from './backend.js';
import { SECTOR_SIZE, VIRTIO_BLK_ID_BYTES } from './constants.js';

/** Cylinders, heads and sectors per track, for old guests (VIRTIO_BLK_F_GEOMETRY). */
export interface BlockGeometry {
  /** Number of cylinders (virtio_blk_geometry.cylinders, u16). */
  readonly cylinders: number;
  /** Number of heads (virtio_blk_geometry.heads, u8). */
  readonly heads: number;
  /** Sectors per track (virtio_blk_geometry.sectors, u8). */
  readonly sectors: number;
}

/** Optimal I/O hints (VIRTIO_BLK_F_TOPOLOGY), in logical blocks. */
export interface BlockTopology {
  /** log2 of logical blocks per physical block. */
  readonly physicalBlockExp: number;
  /** Offset of the first aligned logical block. */
  readonly alignmentOffset: number;
  /** Suggested minimum I/O size. */
  readonly minIoSize: number;
  /** Optimal (suggested maximum) I/O size. */
  readonly optIoSize: number;
}

/** Limits of a range command (discard, write zeroes, secure erase). */
export interface RangeCommandLimits {
  /** Largest segment, in 512-byte sectors. Defaults to 4194304 (2 GiB). */
  readonly maxSectors?: number;
  /** Most segments in one request. Defaults to 32. */
  readonly maxSegments?: number;
  /**
   * Alignment hint for splitting requests, in 512-byte sectors (discard and
   * secure erase). Defaults to the logical block size.
   */
  readonly sectorAlignment?: number;
}

/** Storage wear figures returned by VIRTIO_BLK_T_GET_LIFETIME (spec 5.2.6). */
export interface BlockLifetime {
  /** 0 undefined, 1 normal, 2 warning (80% of reserved blocks used), 3 urgent (90%). */
  readonly preEolInfo: number;
  /** SLC wear in tenths of the lifetime: 0 undefined, 1..10, 11 exceeded. */
  readonly deviceLifetimeEstTypA: number;
  /** MLC wear, same scale as typ A. */
  readonly deviceLifetimeEstTypB: number;
}

/** The generic ring features a block device can use. */
export const BLK_RING_FEATURES =
  featureBit(VIRTIO_F_VERSION_1) |
  featureBit(VIRTIO_F_RING_PACKED) |
  featureBit(VIRTIO_F_INDIRECT_DESC) |
  featureBit(VIRTIO_F_EVENT_IDX) |
  featureBit(VIRTIO_F_IN_ORDER) |
  featureBit(VIRTIO_F_NOTIFICATION_DATA) |
  featureBit(VIRTIO_F_RING_RESET);

/** How one disk is presented to the guest. Everything but `backend` is optional. */
export interface VirtioBlkOptions {
  /** Where the data lives. */
  readonly backend: BlockBackend;
  /** Device ID string for VIRTIO_BLK_T_GET_ID: printable ASCII, at most 20 characters. Defaults to ''. */
  readonly serial?: string;
  /** Offer VIRTIO_BLK_F_RO even if the backend is writable. Read-only backends always are. */
  readonly readOnly?: boolean;
  /** Number of request queues; more than one offers VIRTIO_BLK_F_MQ. Defaults to 1. */
  readonly queues?: number;
  /** Maximum size of each queue, a power of two from 2 to 32768. Defaults to 256. */
  readonly queueSize?: number;
  /** Logical block size in bytes (VIRTIO_BLK_F_BLK_SIZE): a power of two from 512 to 4096. Defaults to 512. */
  readonly blockSize?: number;
  /** Largest data segment in bytes (VIRTIO_BLK_F_SIZE_MAX); not offered by default. */
  readonly sizeMax?: number;
  /** Most data segments per request (VIRTIO_BLK_F_SEG_MAX). Defaults to queueSize - 2. */
  readonly segMax?: number;
  /** Disk geometry (VIRTIO_BLK_F_GEOMETRY); not offered by default. */
  readonly geometry?: BlockGeometry;
  /** I/O hints (VIRTIO_BLK_F_TOPOLOGY); not offered by default. */
  readonly topology?: BlockTopology;
  /** Offer VIRTIO_BLK_F_FLUSH (a write-back cache with flush). Defaults to true. */
  readonly flush?: boolean;
  /** Offer VIRTIO_BLK_F_CONFIG_WCE (the driver picks the cache mode). Needs `flush`. Defaults to true. */
  readonly configWce?: boolean;
  /** Cache mode after reset: write-back (true) or write-through (false). Defaults to true. */
  readonly writeback?: boolean;
  /** Offer VIRTIO_BLK_F_DISCARD (true, false or limits). Defaults to true. */
  readonly discard?: boolean | RangeCommandLimits;
  /** Offer VIRTIO_BLK_F_WRITE_ZEROES (true, false or limits). Defaults to true. */
  readonly writeZeroes?: boolean | RangeCommandLimits;
  /** Offer VIRTIO_BLK_F_SECURE_ERASE (true, false or limits). Defaults to false. */
  readonly secureErase?: boolean | RangeCommandLimits;
  /**
   * Source of lifetime figures; offers VIRTIO_BLK_F_LIFETIME. Leave unset
   * unless the storage really has such metrics (spec 5.2.6.3).
   */
  readonly lifetime?: () => BlockLifetime;
  /**
   * Generic features to offer, a subset of VERSION_1, RING_PACKED,
   * INDIRECT_DESC, EVENT_IDX, IN_ORDER, NOTIFICATION_DATA and RING_RESET
   * (the transport masks those it cannot carry). Defaults to all of them.
   */
  readonly ringFeatures?: bigint;
}

/** A range command's limits, resolved. */
export interface ResolvedRangeLimits {
  /**
   * Largest segment, in 512-byte sectors (max_discard_sectors, max_write_zeroes_sectors or
   * max_secure_erase_sectors).
   */
  readonly maxSectors: number;
  /** Most segments in one request (max_discard_seg, max_write_zeroes_seg or max_secure_erase_seg). */
  readonly maxSegments: number;
  /**
   * Alignment hint for splitting requests, in 512-byte sectors (discard_sector_alignment or
   * secure_erase_sector_alignment).
   */
  readonly sectorAlignment: number;
}

/** Options with defaults applied and every value checked. */
export interface ResolvedBlkOptions {
  /** {@link VirtioBlkOptions.backend}, as given. */
  readonly backend: BlockBackend;
  /** {@link VirtioBlkOptions.serial} encoded as the 20-byte VIRTIO_BLK_T_GET_ID answer, NUL-padded. */
  readonly serial: Uint8Array;
  /** True when VIRTIO_BLK_F_RO is offered: asked for, or forced by a read-only backend. */
  readonly readOnly: boolean;
  /** Number of request queues (num_queues); more than one offers VIRTIO_BLK_F_MQ. */
  readonly queues: number;
  /** Maximum size of each queue, a power of two. */
  readonly queueSize: number;
  /** Logical block size in bytes (blk_size), a power of two from 512 to 4096. */
  readonly blockSize: number;
  /**
   * Largest data segment in bytes (size_max), or undefined when VIRTIO_BLK_F_SIZE_MAX is not
   * offered.
   */
  readonly sizeMax: number | undefined;
  /** Most data segments per request (seg_max). */
  readonly segMax: number;
  /** Disk geometry, or undefined when VIRTIO_BLK_F_GEOMETRY is not offered. */
  readonly geometry: BlockGeometry | undefined;
  /** I/O hints, or undefined when VIRTIO_BLK_F_TOPOLOGY is not offered. */
  readonly topology: BlockTopology | undefined;
  /** Whether VIRTIO_BLK_F_FLUSH is offered. */
  readonly flush: boolean;
  /** Whether VIRTIO_BLK_F_CONFIG_WCE is offered (only with `flush`, spec 5.2.5.2). */
  readonly configWce: boolean;
  /** Cache mode after reset: write-back (true) or write-through (false). */
  readonly writeback: boolean;
  /** Discard limits, or undefined when VIRTIO_BLK_F_DISCARD is not offered. */
  readonly discard: ResolvedRangeLimits | undefined;
  /** Write-zeroes limits, or undefined when VIRTIO_BLK_F_WRITE_ZEROES is not offered. */
  readonly writeZeroes: ResolvedRangeLimits | undefined;
  /** Secure-erase limits, or undefined when VIRTIO_BLK_F_SECURE_ERASE is not offered. */
  readonly secureErase: ResolvedRangeLimits | undefined;
  /** Source of lifetime figures, or undefined when VIRTIO_BLK_F_LIFETIME is not offered. */
  readonly lifetime: (() => BlockLifetime) | undefined;
  /** Generic ring features to offer; always includes VIRTIO_F_VERSION_1. */
  readonly ringFeatures: bigint;
}

/** Applies defaults and validates; throws a RangeError naming the bad option. */
export function resolveOptions(options: VirtioBlkOptions): ResolvedBlkOptions {
  const queues = integer('queues', options.queues ?? 1, 1, 0xffff);
  const queueSize = integer('queueSize', options.queueSize ?? 256, 2, 32768);
  // Split rings need a power of two (spec 2.7), and drivers such as Linux use the maximum as the size.
  if ((queueSize & (queueSize - 1)) !== 0) throw new RangeError(`queueSize ${queueSize} is not a power of two`);
  const blockSize = integer('blockSize', options.blockSize ?? SECTOR_SIZE, SECTOR_SIZE, 4096);
  if ((blockSize & (blockSize - 1)) !== 0) throw new RangeError(`blockSize ${blockSize} is not a power of two`);
  const blockSectors = blockSize / SECTOR_SIZE;
  const flush = options.flush ?? true;
  const configWce = options.configWce ?? true;
  // spec 5.2.5.2: a device offering CONFIG_WCE must offer FLUSH.
  if (configWce && !flush) throw new RangeError('configWce needs flush: spec 5.2.5.2 requires VIRTIO_BLK_F_FLUSH with VIRTIO_BLK_F_CONFIG_WCE');
  const ringFeatures = options.ringFeatures ?? BLK_RING_FEATURES;
  if ((ringFeatures & ~BLK_RING_FEATURES) !== 0n) throw new RangeError(`ringFeatures 0x${ringFeatures.toString(16)} has bits outside the generic ring features`);
  if ((ringFeatures & featureBit(VIRTIO_F_VERSION_1)) === 0n) throw new RangeError('ringFeatures must include VIRTIO_F_VERSION_1');
  return {
    backend: options.backend,
    serial: encodeSerial(options.serial ?? ''),
    readOnly: (options.readOnly ?? false) || options.backend.readOnly,
    queues,
    queueSize,
    blockSize,
    sizeMax: options.sizeMax === undefined ? undefined : integer('sizeMax', options.sizeMax, 1, 0xffffffff),
    segMax: integer('segMax', options.segMax ?? queueSize - 2, 1, 0xffffffff),
    geometry: options.geometry === undefined ? undefined : checkGeometry(options.geometry),
    topology: options.topology === undefined ? undefined : checkTopology(options.topology),
    flush,
    configWce,
    writeback: options.writeback ?? true,
    discard: rangeLimits('discard', options.discard ?? true, blockSectors),
    writeZeroes: rangeLimits('writeZeroes', options.writeZeroes ?? true, blockSectors),
    secureErase: rangeLimits('secureErase', options.secureErase ?? false, blockSectors),
    lifetime: options.lifetime,
    ringFeatures,
  };
}

/** Checks lifetime figures for reserved values, which spec 5.2.6.3 forbids sending. */
export function lifetimeProblem(lifetime: BlockLifetime): string | undefined {
  const { preEolInfo, deviceLifetimeEstTypA: a, deviceLifetimeEstTypB: b } = lifetime;
  if (!inRange(preEolInfo, 0, 3)) return `pre_eol_info ${preEolInfo} is reserved`;
  if (!inRange(a, 0, 11)) return `device_lifetime_est_typ_a ${a} is reserved`;
  if (!inRange(b, 0, 11)) return `device_lifetime_est_typ_b ${b} is reserved`;
  return undefined;
}

function rangeLimits(name: string, value: boolean | RangeCommandLimits, blockSectors: number): ResolvedRangeLimits | undefined {
  if (value === false) return undefined;
  const limits = value === true ? {} : value;
  const sectorAlignment = integer(`${name}.sectorAlignment`, limits.sectorAlignment ?? blockSectors, 1, 0xffffffff);
  return {
    maxSectors: integer(`${name}.maxSectors`, limits.maxSectors ?? 1 << 22, 1, 0xffffffff),
    maxSegments: integer(`${name}.maxSegments`, limits.maxSegments ?? 32, 1, 0xffff),
    sectorAlignment,
  };
}

function encodeSerial(serial: string): Uint8Array {
  if (serial.length > VIRTIO_BLK_ID_BYTES || !/^[\x20-\x7e]*$/.test(serial)) {
    throw new RangeError(`serial ${JSON.stringify(serial)} must be at most ${VIRTIO_BLK_ID_BYTES} printable ASCII characters`);
  }
  const bytes = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  for (let i = 0; i < serial.length; i++) bytes[i] = serial.charCodeAt(i);
  return bytes;
}

function checkGeometry(g: BlockGeometry): BlockGeometry {
  integer('geometry.cylinders', g.cylinders, 0, 0xffff);
  integer('geometry.heads', g.heads, 0, 0xff);
  integer('geometry.sectors', g.sectors, 0, 0xff);
  return g;
}

function checkTopology(t: BlockTopology): BlockTopology {
  integer('topology.physicalBlockExp', t.physicalBlockExp, 0, 0xff);
  integer('topology.alignmentOffset', t.alignmentOffset, 0, 0xff);
  integer('topology.minIoSize', t.minIoSize, 0, 0xffff);
  integer('topology.optIoSize', t.optIoSize, 0, 0xffffffff);
  return t;
}

function integer(name: string, value: number, min: number, max: number): number {
  if (!inRange(value, min, max)) throw new RangeError(`${name} ${value} is not an integer in ${min}..${max}`);
  return value;
}

function inRange(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}
