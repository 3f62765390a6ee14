import type { DescriptorChain } from './chain.js';

/** Where the driver placed a queue's three areas (spec 2.6), as the transport collected them. */
export interface QueueConfig {
  /** Number of entries; a power of two for split rings (spec 2.7), at most 32768. */
  readonly size: number;
  /** Descriptor Area: the descriptor table (split) or descriptor ring (packed). */
  readonly descAddr: number;
  /** Driver Area: the available ring (split) or driver event suppression (packed). */
  readonly driverAddr: number;
  /** Device Area: the used ring (split) or device event suppression (packed). */
  readonly deviceAddr: number;
}

/**
 * Where a queue resumes: the position the device had reached in the available
 * ring and in the used ring. Used by snapshot/restore and by vhost-user's
 * GET_VRING_BASE / SET_VRING_BASE. For split rings the wrap counters are unused
 * and the indices are the free-running 16-bit ring indices.
 */
export interface QueuePosition {
  /** Split: last_avail_idx. Packed: next descriptor slot the device will read. */
  readonly availIndex: number;
  /** Packed: the device's view of the Driver Ring Wrap Counter. */
  readonly availWrapCounter: boolean;
  /** Split: the used ring's idx. Packed: next descriptor slot the device will write. */
  readonly usedIndex: number;
  /** Packed: the Device Ring Wrap Counter. */
  readonly usedWrapCounter: boolean;
}

/** What a virtqueue reports back to whoever created it (the transport or vhost-user back-end). */
export interface QueueHooks {
  /** Send a used buffer notification to the driver (an interrupt). */
  readonly interrupt: () => void;
  /**
   * The ring is corrupt beyond a single chain (an available index that jumps by
   * more than the queue size, a head index out of range, more buffers than the
   * queue holds). The queue stops; the transport sets DEVICE_NEEDS_RESET.
   */
  readonly corrupt: (reason: string) => void;
}

/**
 * The device side of one virtqueue, split or packed behind one API.
 *
 * The usual loop: `pop()` until null, complete each chain with `addUsed(chain,
 * len)` (now or later, in any order), and call `flush()` once per batch to
 * publish the used entries and raise at most one interrupt.
 */
export interface Virtqueue {
  /** Queue index within its device. */
  readonly index: number;
  /** Number of entries. */
  readonly size: number;
  /** True for the packed layout (spec 2.8), false for split (spec 2.7). */
  readonly packed: boolean;
  /** Chains popped and not yet completed with addUsed. */
  readonly inFlight: number;
  /** Set once the ring was found corrupt; the queue then yields nothing. */
  readonly broken: boolean;
  /** Set once the queue was reset or its device reset; every call then does nothing. */
  readonly detached: boolean;
  /** The last notification data the driver sent (VIRTIO_F_NOTIFICATION_DATA), or -1. */
  readonly notificationData: number;

  /**
   * The next available chain, validated, or null when the ring is empty, broken
   * or detached. A malformed chain comes back with `fault` set: complete it and
   * move on. When notifications are enabled and the ring is found empty, the
   * queue re-arms driver notifications before returning null.
   */
  pop(): DescriptorChain | null;
  /** Gives back the chain returned by the latest pop() so that the next pop() returns it again. */
  undoPop(chain: DescriptorChain): void;
  /**
   * Marks a chain used with `len` bytes written (clamped to its writable length).
   * The entry is staged until flush(); with VIRTIO_F_IN_ORDER, completions are
   * held back until every earlier chain has completed. The chain object is
   * recycled: do not touch it afterwards.
   */
  addUsed(chain: DescriptorChain, len: number): void;
  /** Publishes staged used entries; interrupts the driver if it asked for it. Returns whether it did. */
  flush(): boolean;
  /** Asks the driver to notify on new buffers; returns true if buffers arrived meanwhile (spec 2.7.10, 2.8.10). */
  enableNotification(): boolean;
  /** Asks the driver not to notify (a hint the driver may ignore). */
  disableNotification(): void;
  /** Records the data of a driver notification (spec 2.9). */
  setNotificationData(data: number): void;
  /** Where the queue is in both rings. Meaningful when nothing is in flight. */
  position(): QueuePosition;
  /** Stops the queue for good: later calls do nothing, so late completions never reach a re-initialised ring. */
  detach(): void;
}
