import type { ResolvedBlkOptions } from './options.js';

/**
 * Offsets in struct virtio_blk_config (spec 5.2.4), up to and including the
 * secure erase fields. The zoned characteristics that follow are not part of
 * the space: this device never offers VIRTIO_BLK_F_ZONED (spec 5.2.5.2 says a
 * non-zoned device should not).
 */
export const BlkConfigOffset = {
  capacity: 0,
  sizeMax: 8,
  segMax: 12,
  cylinders: 16,
  heads: 18,
  sectors: 19,
  blkSize: 20,
  physicalBlockExp: 24,
  alignmentOffset: 25,
  minIoSize: 26,
  optIoSize: 28,
  writeback: 32,
  numQueues: 34,
  maxDiscardSectors: 36,
  maxDiscardSeg: 40,
  discardSectorAlignment: 44,
  maxWriteZeroesSectors: 48,
  maxWriteZeroesSeg: 52,
  writeZeroesMayUnmap: 56,
  maxSecureEraseSectors: 60,
  maxSecureEraseSeg: 64,
  secureEraseSectorAlignment: 68,
} as const;

/** Size of the configuration space this device exposes. */
export const BLK_CONFIG_SIZE = 72;

/**
 * The configuration space bytes. Fields of features that are not offered stay
 * zero, as do the padding bytes (spec 5.2.5.2).
 */
export class BlkConfigSpace {
  /** The little-endian bytes the driver reads. */
  readonly bytes = new Uint8Array(BLK_CONFIG_SIZE);
  private readonly view = new DataView(this.bytes.buffer);
  private sectors = 0;

  /** Fills the fixed fields from the options. */
  constructor(options: ResolvedBlkOptions) {
    const o = BlkConfigOffset;
    const v = this.view;
    if (options.sizeMax !== undefined) v.setUint32(o.sizeMax, options.sizeMax, true);
    v.setUint32(o.segMax, options.segMax, true);
    if (options.geometry !== undefined) {
      v.setUint16(o.cylinders, options.geometry.cylinders, true);
      v.setUint8(o.heads, options.geometry.heads);
      v.setUint8(o.sectors, options.geometry.sectors);
    }
    v.setUint32(o.blkSize, options.blockSize, true);
    if (options.topology !== undefined) {
      v.setUint8(o.physicalBlockExp, options.topology.physicalBlockExp);
      v.setUint8(o.alignmentOffset, options.topology.alignmentOffset);
      v.setUint16(o.minIoSize, options.topology.minIoSize, true);
      v.setUint32(o.optIoSize, options.topology.optIoSize, true);
    }
    v.setUint16(o.numQueues, options.queues, true);
    if (options.discard !== undefined) {
      v.setUint32(o.maxDiscardSectors, options.discard.maxSectors, true);
      v.setUint32(o.maxDiscardSeg, options.discard.maxSegments, true);
      v.setUint32(o.discardSectorAlignment, options.discard.sectorAlignment, true);
    }
    if (options.writeZeroes !== undefined) {
      v.setUint32(o.maxWriteZeroesSectors, options.writeZeroes.maxSectors, true);
      v.setUint32(o.maxWriteZeroesSeg, options.writeZeroes.maxSegments, true);
      v.setUint8(o.writeZeroesMayUnmap, options.backend.canUnmap ? 1 : 0);
    }
    if (options.secureErase !== undefined) {
      v.setUint32(o.maxSecureEraseSectors, options.secureErase.maxSectors, true);
      v.setUint32(o.maxSecureEraseSeg, options.secureErase.maxSegments, true);
      v.setUint32(o.secureEraseSectorAlignment, options.secureErase.sectorAlignment, true);
    }
  }

  /** `capacity`, in 512-byte sectors. */
  get capacity(): number {
    return this.sectors;
  }

  set capacity(sectors: number) {
    this.sectors = sectors;
    this.view.setBigUint64(BlkConfigOffset.capacity, BigInt(sectors), true);
  }

  /** `writeback`: true for a write-back cache, false for write-through. */
  get writeback(): boolean {
    return this.bytes[BlkConfigOffset.writeback] === 1;
  }

  set writeback(on: boolean) {
    this.bytes[BlkConfigOffset.writeback] = on ? 1 : 0;
  }
}
