/**
 * Why a descriptor chain was refused. A faulted chain is still handed to the
 * device, which completes it (usually with length 0) and moves on: one bad
 * request must not take the queue down (spec 2.7.5.3.1, 2.8.7.1 describe the
 * driver rules these faults detect).
 */
export const ChainFault = {
  /** The chain is valid. */
  NONE: 0,
  /** A `next` index, or the head index, is not below the table size. */
  DESCRIPTOR_INDEX_OUT_OF_RANGE: 1,
  /** More descriptors than the queue size (or the indirect table) allows: a loop. */
  CHAIN_TOO_LONG: 2,
  /** VIRTQ_DESC_F_INDIRECT inside an indirect table (spec 2.7.5.3.1). */
  NESTED_INDIRECT: 3,
  /** An indirect table whose length is zero, not a multiple of 16, or too large. */
  INDIRECT_TABLE_SIZE: 4,
  /** VIRTQ_DESC_F_INDIRECT used without VIRTIO_F_INDIRECT_DESC negotiated. */
  INDIRECT_NOT_NEGOTIATED: 5,
  /** VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT (spec 2.7.5.3.1). */
  INDIRECT_WITH_NEXT: 6,
  /** The readable or writable part adds up to more than 2^32 - 1 bytes (spec 2.7.5.2). */
  LENGTH_OVERFLOW: 7,
  /** A buffer is not wholly inside guest memory, or a writable one is in read-only memory. */
  BUFFER_OUTSIDE_MEMORY: 8,
  /** A device-readable descriptor follows a device-writable one (spec 2.7.4.2). */
  READABLE_AFTER_WRITABLE: 9,
  /** The indirect table itself is not inside guest memory. */
  INDIRECT_TABLE_OUTSIDE_MEMORY: 10,
} as const;

/** One of the {@link ChainFault} values. */
export type ChainFault = (typeof ChainFault)[keyof typeof ChainFault];

/** Human-readable names of the faults, for logs. */
export const chainFaultName: Readonly<Record<ChainFault, string>> = {
  0: 'none',
  1: 'descriptor index out of range',
  2: 'chain longer than the queue allows',
  3: 'nested indirect table',
  4: 'bad indirect table size',
  5: 'indirect descriptor without VIRTIO_F_INDIRECT_DESC',
  6: 'indirect descriptor with VIRTQ_DESC_F_NEXT',
  7: 'total length over 2^32-1',
  8: 'buffer outside guest memory',
  9: 'device-readable descriptor after a device-writable one',
  10: 'indirect table outside guest memory',
};
