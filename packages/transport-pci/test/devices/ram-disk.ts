import {
  ChainFault,
  DeviceId,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
  type ActivationContext,
  type DescriptorChain,
  type Virtqueue,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';

/** virtio-blk request types and status values (spec 5.2.6). */
const VIRTIO_BLK_T_IN = 0;
const VIRTIO_BLK_T_OUT = 1;
const VIRTIO_BLK_T_FLUSH = 4;
const VIRTIO_BLK_T_GET_ID = 8;
const VIRTIO_BLK_S_OK = 0;
const VIRTIO_BLK_S_IOERR = 1;
const VIRTIO_BLK_S_UNSUPP = 2;
const VIRTIO_BLK_F_FLUSH = 9;
const SECTOR = 512;
/** The serial number GET_ID returns: 20 bytes, NUL-padded. */
const DISK_ID = new TextEncoder().encode('virtio-ts-ramdisk'.padEnd(20, '\0'));

/**
 * A small virtio-blk device over a RAM buffer, for transport tests: one
 * request queue serving IN, OUT, FLUSH and GET_ID (spec 5.2.6), configuration
 * space holding the capacity, and queue reset.
 */
export class RamDiskDevice implements VirtioDevice {
  readonly contractVersion = 1;
  readonly deviceType = DeviceId.BLOCK;
  readonly deviceFeatures: bigint;
  readonly queueMaxSizes = [128];
  readonly configSize = 8;
  /** The disk's contents. */
  readonly disk: Uint8Array;
  private queue: Virtqueue | undefined;

  constructor(sectors = 64, options: { legacy?: boolean } = {}) {
    this.disk = new Uint8Array(sectors * SECTOR);
    this.deviceFeatures =
      featureBit(VIRTIO_BLK_F_FLUSH) |
      featureBit(VIRTIO_F_INDIRECT_DESC) |
      featureBit(VIRTIO_F_EVENT_IDX) |
      (options.legacy === true
        ? 0n
        : featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_RING_RESET) | featureBit(VIRTIO_F_NOTIFICATION_DATA));
  }

  readConfig(offset: number, data: Uint8Array): void {
    const config = new DataView(new ArrayBuffer(8));
    config.setBigUint64(0, BigInt(this.disk.length / SECTOR), true);
    data.set(new Uint8Array(config.buffer, offset, data.length));
  }

  writeConfig(): void {
    // Capacity is read-only.
  }

  activate(context: ActivationContext): void {
    this.queue = context.queues.get(0);
  }

  reset(): void {
    this.queue = undefined;
  }

  resetQueue(): void {
    this.queue = undefined;
  }

  enableQueue(_index: number, queue: Virtqueue): void {
    this.queue = queue;
  }

  notify(index: number): void {
    const queue = this.queue;
    if (index !== 0 || queue === undefined) return;
    for (let n = 0; n < queue.size; n++) {
      const chain = queue.pop();
      if (chain === null) break;
      queue.addUsed(chain, chain.fault === ChainFault.NONE ? this.serve(chain) : 0);
    }
    queue.flush();
  }

  /** Serves one request; returns the bytes written: data, zero-filled to its end, then the status byte. */
  private serve(chain: DescriptorChain): number {
    if (chain.readableLength < 16 || chain.writableLength < 1) return 0;
    const type = chain.reader.readU32();
    chain.reader.skip(4);
    const sector = chain.reader.readU64();
    const dataIn = chain.writableLength - 1;
    const status = this.execute(type, sector, chain, dataIn);
    chain.writer.fill(dataIn - chain.writer.bytesWritten);
    chain.writer.writeU8(status);
    return chain.writer.bytesWritten;
  }

  private execute(type: number, sector: bigint, chain: DescriptorChain, dataIn: number): number {
    const inRange = (length: number): boolean => sector * BigInt(SECTOR) + BigInt(length) <= BigInt(this.disk.length);
    const offset = Number(sector) * SECTOR;
    switch (type) {
      case VIRTIO_BLK_T_IN:
        if (!inRange(dataIn)) return VIRTIO_BLK_S_IOERR;
        chain.writer.write(this.disk.subarray(offset, offset + dataIn));
        return VIRTIO_BLK_S_OK;
      case VIRTIO_BLK_T_OUT: {
        if (!inRange(chain.reader.remaining)) return VIRTIO_BLK_S_IOERR;
        let at = offset;
        for (const part of chain.reader.slices()) {
          this.disk.set(part, at);
          at += part.length;
        }
        return VIRTIO_BLK_S_OK;
      }
      case VIRTIO_BLK_T_FLUSH:
        return VIRTIO_BLK_S_OK;
      case VIRTIO_BLK_T_GET_ID:
        chain.writer.write(DISK_ID.subarray(0, Math.min(DISK_ID.length, dataIn)));
        return VIRTIO_BLK_S_OK;
      default:
        return VIRTIO_BLK_S_UNSUPP;
    }
  }
}
