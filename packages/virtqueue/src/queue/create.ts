import { MAX_QUEUE_SIZE, VIRTIO_F_EVENT_IDX, VIRTIO_F_IN_ORDER, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, hasFeature } from '../constants.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { PackedVirtqueue, packedRingSizes } from './packed.js';
import { ringAreaProblem } from './ring-view.js';
import { SplitVirtqueue, splitRingSizes } from './split.js';
import { BigEndianSplitVirtqueue } from './split-big-endian.js';
import type { QueueConfig, QueueHooks, QueuePosition, Virtqueue } from './virtqueue.js';

/**
 * Why `config` cannot be used as a queue in `memory` with the given layout, or
 * undefined if it can: the size rules (spec 2.7: a power of two; spec 2.8: any
 * size up to 32768), the alignment of each area (spec 2.7 table, 2.8.10), and
 * each area lying in guest memory the device can write.
 */
export function queueConfigProblem(memory: GuestMemory, config: QueueConfig, packed: boolean): string | undefined {
  const { size } = config;
  if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE) return `queue size ${size} is not in 1..${MAX_QUEUE_SIZE}`;
  if (packed) {
    const sizes = packedRingSizes(size);
    return (
      ringAreaProblem(memory, config.descAddr, sizes.desc, 16) ??
      ringAreaProblem(memory, config.driverAddr, sizes.driver, 4) ??
      ringAreaProblem(memory, config.deviceAddr, sizes.device, 4)
    );
  }
  if ((size & (size - 1)) !== 0) return `split queue size ${size} is not a power of two`;
  const sizes = splitRingSizes(size);
  return (
    ringAreaProblem(memory, config.descAddr, sizes.desc, 16) ??
    ringAreaProblem(memory, config.driverAddr, sizes.avail, 2) ??
    ringAreaProblem(memory, config.deviceAddr, sizes.used, 4)
  );
}

/** Why `start` cannot be a position in a ring of `size` entries, or undefined if it can. */
function startProblem(start: QueuePosition, size: number, packed: boolean): string | undefined {
  // Split indices are free-running 16-bit counters; packed ones are slots in the ring (spec 2.8.1).
  const limit = packed ? size : 0x10000;
  for (const [name, value] of [['available', start.availIndex], ['used', start.usedIndex]] as const) {
    if (!Number.isInteger(value) || value < 0 || value >= limit) return `resume ${name} index ${value} is not in 0..${limit - 1}`;
  }
  return undefined;
}

/**
 * The byte order of a ring's fields: little-endian for every virtio 1.x ring
 * (spec 2.7, 2.8); a legacy driver's rings are in its guest's order (spec 2.7.3).
 */
export type ByteOrder = 'little-endian' | 'big-endian';

/** Everything needed to create a virtqueue besides memory and its configuration. */
export interface CreateVirtqueueOptions {
  /** Queue index within the device. */
  readonly index: number;
  /** Negotiated features: select the layout and the ring features in use. */
  readonly features: bigint;
  /** Interrupt and corruption callbacks. */
  readonly hooks: QueueHooks;
  /** Resume from this position instead of the start (restore, vhost-user SET_VRING_BASE). */
  readonly start?: QueuePosition;
  /**
   * The ring's byte order; little-endian by default. 'big-endian' is a legacy
   * split ring of a big-endian guest (spec 2.7.3, virtio-ccw revision 0), so
   * only without VIRTIO_F_VERSION_1 and VIRTIO_F_RING_PACKED.
   */
  readonly byteOrder?: ByteOrder;
}

/**
 * Creates the device side of a virtqueue, split or packed according to
 * VIRTIO_F_RING_PACKED, in the given byte order. Throws a RangeError naming the
 * problem when `config` is unusable (see {@link queueConfigProblem}), `start`
 * is not a position in it, or a big-endian ring is asked for with virtio 1.x features.
 */
export function createVirtqueue(memory: GuestMemory, config: QueueConfig, options: CreateVirtqueueOptions): Virtqueue {
  const packed = hasFeature(options.features, VIRTIO_F_RING_PACKED);
  const bigEndian = options.byteOrder === 'big-endian';
  const problem =
    (bigEndian && (packed || hasFeature(options.features, VIRTIO_F_VERSION_1))
      ? 'big-endian rings are legacy split rings: not with VIRTIO_F_VERSION_1 or VIRTIO_F_RING_PACKED (spec 2.7.3)'
      : undefined) ??
    queueConfigProblem(memory, config, packed) ??
    (options.start === undefined ? undefined : startProblem(options.start, config.size, packed));
  if (problem !== undefined) throw new RangeError(`queue ${options.index}: ${problem}`);
  const layout = {
    index: options.index,
    eventIdx: hasFeature(options.features, VIRTIO_F_EVENT_IDX),
    indirect: hasFeature(options.features, VIRTIO_F_INDIRECT_DESC),
    inOrder: hasFeature(options.features, VIRTIO_F_IN_ORDER),
  };
  if (packed) return new PackedVirtqueue(memory, config, options.hooks, layout, options.start);
  return bigEndian
    ? new BigEndianSplitVirtqueue(memory, config, options.hooks, layout, options.start)
    : new SplitVirtqueue(memory, config, options.hooks, layout, options.start);
}
