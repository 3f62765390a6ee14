import { VirtioBlk } from '@virtio-ts/virtio-blk';
import { FileBackend } from '@virtio-ts/virtio-blk/node';
import { UsageError } from '../errors.js';

/** A block device over an image file, ready to serve. */
export interface OpenBlk {
  /** The virtio-blk device over the image, to hand to a transport or vhost-user back-end. */
  readonly device: VirtioBlk;
  /** "FILE (N MiB, read-only, 2 queues)", for status lines. */
  readonly describe: string;
  /** Closes the image. */
  close(): Promise<void>;
}

/**
 * Ring size the device allows: QEMU's largest (VIRTQUEUE_MAX_SIZE). The
 * front-end picks the size; over virtio-mmio Linux takes the largest QEMU
 * reports, which is this.
 */
const QUEUE_SIZE = 1024;

/** Opens `image` and builds a virtio-blk device over it. Bad options are usage errors; image problems say what to do. */
export async function openBlk(options: { image: string; readOnly: boolean; queues: number; serial?: string }): Promise<OpenBlk> {
  const backend = await FileBackend.open(options.image, { readOnly: options.readOnly });
  let device: VirtioBlk;
  try {
    device = new VirtioBlk({ backend, readOnly: options.readOnly, queues: options.queues, queueSize: QUEUE_SIZE, ...(options.serial === undefined ? {} : { serial: options.serial }) });
  } catch (error) {
    await backend.close();
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const mib = (device.capacity * 512) / 2 ** 20;
  const traits = [`${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`, ...(options.readOnly ? ['read-only'] : []), `${options.queues} ${options.queues === 1 ? 'queue' : 'queues'}`];
  return { device, describe: `${options.image} (${traits.join(', ')})`, close: () => backend.close() };
}
