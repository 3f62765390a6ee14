/**
 * The block guest suite: what the test guest's /init (scripts/guest/init)
 * checks on a read-write disk (vda) and a read-only one (vdb) in one boot.
 * Every path that serves our virtio-blk to a Linux guest (this package's
 * vhost-user back-end under QEMU, the VMM in apps/vmm) runs the same list, so
 * each proves the same things.
 */

/** The read-only disk's serial. */
export const READ_ONLY_SERIAL = 'vt-readonly';

/** Where the rw check writes its random data and reads it back: MiB offset and length on vda. */
export const RW_EXTENT = { offsetMib: 1, mib: 4 } as const;

/** One boot of the suite. */
export interface BlockSuiteBoot {
  /** Size of both disks in bytes. */
  readonly diskBytes: number;
  /** The read-write disk's serial. */
  readonly serial: string;
  /** Request queues the read-write disk offers (the guest needs as many CPUs to use them). */
  readonly queues: number;
  /** The rings are packed (VIRTIO_F_RING_PACKED negotiated). */
  readonly packed: boolean;
}

/**
 * The checks, in order: both disks found with their size and serial, the
 * queue count and ring layout Linux negotiated, write and read back, flush,
 * discard, and writes refused on the read-only disk.
 */
export function blockSuiteChecks(boot: BlockSuiteBoot): string[] {
  return [
    `disk:vda:${boot.diskBytes}:${boot.serial}`,
    `queues:vda:${boot.queues}`,
    `packed:vda:${boot.packed ? 1 : 0}`,
    `rw:vda:${RW_EXTENT.offsetMib}:${RW_EXTENT.mib}`,
    'flush:vda',
    'discard:vda:8:4',
    `disk:vdb:${boot.diskBytes}:${READ_ONLY_SERIAL}`,
    'readonly:vdb',
  ];
}
