import type { DescriptorChain } from '@virtio-ts/virtqueue';
import type { BlockBackend } from './backend.js';
import {
  REQUEST_HEADER_BYTES,
  SECTOR_SIZE,
  SEGMENT_DESCRIPTOR_BYTES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_LIFETIME_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_FLUSH_OUT,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from './constants.js';
import type { FlushSequencer } from './flush-sequencer.js';
import { lifetimeProblem, type BlockLifetime, type ResolvedRangeLimits } from './options.js';

/**
 * A request's status, or, for a request that waits on the backend, a promise
 * that fulfils for VIRTIO_BLK_S_OK and rejects for VIRTIO_BLK_S_IOERR.
 */
export type RequestOutcome = number | Promise<void>;

/** What the request handler needs to know about the device, as negotiated. */
export interface DiskState {
  /** The storage that requests read, write, discard and flush. */
  readonly backend: BlockBackend;
  /** Shared flush coalescer, so FLUSH requests and write-through writes share backend flushes. */
  readonly flusher: FlushSequencer;
  /** Device ID string, 20 bytes NUL-padded. */
  readonly serial: Uint8Array;
  /** Current capacity in 512-byte sectors. */
  readonly capacity: number;
  /** VIRTIO_BLK_F_RO was offered: every write fails (spec 5.2.6.2). */
  readonly readOnly: boolean;
  /** Logical block size in sectors: range commands must be aligned to it. */
  readonly blockSectors: number;
  /** The driver negotiated VIRTIO_BLK_F_FLUSH: FLUSH requests are served. */
  readonly flushEnabled: boolean;
  /** VIRTIO_BLK_T_DISCARD limits; undefined when not negotiated. */
  readonly discard: ResolvedRangeLimits | undefined;
  /** VIRTIO_BLK_T_WRITE_ZEROES limits; undefined when not negotiated. */
  readonly writeZeroes: ResolvedRangeLimits | undefined;
  /** VIRTIO_BLK_T_SECURE_ERASE limits; undefined when not negotiated. */
  readonly secureErase: ResolvedRangeLimits | undefined;
  /** Negotiated VIRTIO_BLK_F_LIFETIME's source. */
  readonly lifetime: (() => BlockLifetime) | undefined;
  /** The driver is legacy (no VIRTIO_F_VERSION_1): VIRTIO_BLK_T_FLUSH_OUT means flush. */
  readonly legacy: boolean;
  /** Completed writes must be durable before they are reported (spec 5.2.6.2, cases 1 and 2). */
  writethrough(): boolean;
}

const IOERR: RequestOutcome = VIRTIO_BLK_S_IOERR;

/**
 * Parses and starts one request (spec 5.2.6). The chain is valid (no fault)
 * and has at least one writable byte, the status byte: the last byte of the
 * writable part. No framing is assumed (spec 2.7.4): the header, data and
 * status may be split across descriptors anywhere. On return the reader has
 * consumed the header and the writer stands after the data the request fills
 * on success (for IN, once the backend read lands): its `bytesWritten` is the
 * data part of the used length.
 */
export function startRequest(chain: DescriptorChain, disk: DiskState): RequestOutcome {
  if (chain.readableLength < REQUEST_HEADER_BYTES) return IOERR;
  const reader = chain.reader;
  const type = reader.readU32();
  reader.skip(4); // reserved (legacy ioprio): a hint at most
  const sectorLo = reader.readU32();
  const sectorHi = reader.readU32();
  // Sectors at or above 2^53 / 512 cannot be inside any capacity this device can have.
  const sector = sectorHi < 0x200000 ? sectorHi * 0x100000000 + sectorLo : Number.MAX_SAFE_INTEGER;
  const outBytes = reader.remaining;
  const inBytes = chain.writableLength - 1;
  switch (type) {
    case VIRTIO_BLK_T_IN:
      if (outBytes !== 0 || !dataInRange(disk, sector, inBytes)) return IOERR;
      return disk.backend.read(sector * SECTOR_SIZE, chain.writer.slices(inBytes)) ?? VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_OUT:
      if (disk.readOnly || inBytes !== 0 || !dataInRange(disk, sector, outBytes)) return IOERR;
      return durable(disk, disk.backend.write(sector * SECTOR_SIZE, reader.slices(outBytes)));
    case VIRTIO_BLK_T_FLUSH_OUT:
      if (!disk.legacy) return VIRTIO_BLK_S_UNSUPP;
      return flush(disk);
    case VIRTIO_BLK_T_FLUSH:
      // A flush carrying data or a non-zero sector breaks only driver SHOULDs and MUSTs the device need not police.
      return flush(disk);
    case VIRTIO_BLK_T_GET_ID:
      // spec 5.2.6.1: the data MUST be 20 bytes.
      if (outBytes !== 0 || inBytes !== VIRTIO_BLK_ID_BYTES) return IOERR;
      chain.writer.write(disk.serial);
      return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_LIFETIME:
      return getLifetime(chain, disk, outBytes, inBytes);
    case VIRTIO_BLK_T_DISCARD:
      return rangeCommand(chain, disk, type, disk.discard, outBytes, inBytes);
    case VIRTIO_BLK_T_WRITE_ZEROES:
      return rangeCommand(chain, disk, type, disk.writeZeroes, outBytes, inBytes);
    case VIRTIO_BLK_T_SECURE_ERASE:
      return rangeCommand(chain, disk, type, disk.secureErase, outBytes, inBytes);
    default:
      // Zoned, SCSI, barrier and unknown types: spec 5.2.6.2 rejects zone requests with UNSUPP.
      return VIRTIO_BLK_S_UNSUPP;
  }
}

/** IN and OUT: whole sectors (spec 5.2.6.1) inside the capacity. */
function dataInRange(disk: DiskState, sector: number, bytes: number): boolean {
  return bytes % SECTOR_SIZE === 0 && sector <= disk.capacity && bytes / SECTOR_SIZE <= disk.capacity - sector;
}

function flush(disk: DiskState): RequestOutcome {
  if (!disk.flushEnabled) return VIRTIO_BLK_S_UNSUPP;
  return disk.flusher.flush();
}

/** A write's outcome; in write-through mode only once it is durable (spec 5.2.6.2). */
function durable(disk: DiskState, write: Promise<void>): Promise<void> {
  return disk.writethrough() ? write.then(() => disk.flusher.flush()) : write;
}

function getLifetime(chain: DescriptorChain, disk: DiskState, outBytes: number, inBytes: number): RequestOutcome {
  const source = disk.lifetime;
  if (source === undefined) return VIRTIO_BLK_S_UNSUPP;
  if (outBytes !== 0 || inBytes !== VIRTIO_BLK_LIFETIME_BYTES) return IOERR;
  const lifetime = source();
  // spec 5.2.6.3: the device must not send reserved values.
  if (lifetimeProblem(lifetime) !== undefined) return IOERR;
  const w = chain.writer;
  w.writeU16(lifetime.preEolInfo);
  w.writeU16(lifetime.deviceLifetimeEstTypA);
  w.writeU16(lifetime.deviceLifetimeEstTypB);
  return VIRTIO_BLK_S_OK;
}

/**
 * DISCARD, WRITE_ZEROES and SECURE_ERASE: a list of struct
 * virtio_blk_discard_write_zeroes. Every segment is checked before any is
 * executed. Unknown flags, and `unmap` outside WRITE_ZEROES, are UNSUPP
 * (spec 5.2.6.2); a read-only disk, a malformed list, too many segments, a
 * segment that is too large, misaligned to the logical block size or past the
 * capacity are IOERR.
 */
function rangeCommand(
  chain: DescriptorChain,
  disk: DiskState,
  type: number,
  limits: ResolvedRangeLimits | undefined,
  outBytes: number,
  inBytes: number,
): RequestOutcome {
  if (limits === undefined) return VIRTIO_BLK_S_UNSUPP;
  if (disk.readOnly || inBytes !== 0) return IOERR;
  if (outBytes === 0 || outBytes % SEGMENT_DESCRIPTOR_BYTES !== 0) return IOERR;
  const count = outBytes / SEGMENT_DESCRIPTOR_BYTES;
  if (count > limits.maxSegments) return IOERR;
  const reader = chain.reader;
  const segments = new Float64Array(3 * count);
  let outcome: number = VIRTIO_BLK_S_OK;
  for (let i = 0; i < count; i++) {
    const lo = reader.readU32();
    const hi = reader.readU32();
    const sectors = reader.readU32();
    const flags = reader.readU32();
    const allowed = type === VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
    if ((flags & ~allowed) !== 0) return VIRTIO_BLK_S_UNSUPP;
    const sector = hi < 0x200000 ? hi * 0x100000000 + lo : Number.MAX_SAFE_INTEGER;
    const aligned = sector % disk.blockSectors === 0 && sectors % disk.blockSectors === 0;
    if (sectors > limits.maxSectors || !aligned || sector > disk.capacity || sectors > disk.capacity - sector) {
      outcome = VIRTIO_BLK_S_IOERR; // keep reading: an unknown flag in a later segment still means UNSUPP
    }
    segments[3 * i] = sector * SECTOR_SIZE;
    segments[3 * i + 1] = sectors * SECTOR_SIZE;
    segments[3 * i + 2] = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
  }
  if (outcome !== VIRTIO_BLK_S_OK) return outcome;
  const backend = disk.backend;
  const run = async (): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const offset = segments[3 * i] as number;
      const length = segments[3 * i + 1] as number;
      if (length === 0) continue;
      if (type === VIRTIO_BLK_T_DISCARD) await backend.discard(offset, length);
      // Secure erase never unmaps: the old data must not come back through the image.
      else await backend.writeZeroes(offset, length, segments[3 * i + 2] === 1);
    }
  };
  return type === VIRTIO_BLK_T_DISCARD ? run() : durable(disk, run());
}
