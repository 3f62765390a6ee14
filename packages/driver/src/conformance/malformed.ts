import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, type GuestMemory } from '@virtio-ts/virtqueue';
import type { GuestBuffer } from '@virtio-ts/virtqueue/testing';
import type { DriverQueue } from '../driver-queue.js';
import type { VirtioDriver } from '../driver.js';

/** Which queues a malformed chain can be written to. */
interface Applicability {
  /** Only for this layout. */
  readonly layout?: 'split' | 'packed';
  /** Only when VIRTIO_F_INDIRECT_DESC is (true) or is not (false) negotiated. */
  readonly indirect?: boolean;
}

/** A malformed descriptor chain a hostile driver can make available, and the spec rule it breaks. */
export interface MalformedChain extends Applicability {
  /** What is wrong, for test titles. */
  readonly name: string;
  /** Writes the chain (staged, not yet kicked) into `queue`; returns its ID. */
  readonly build: (driver: VirtioDriver, queue: DriverQueue) => number;
}

const CHAIN_BYTES = 16;

/** The guest address one past the highest byte of guest memory. */
function memoryEnd(memory: GuestMemory): number {
  return Math.max(...memory.regions.map((r) => r.end));
}

/** A device-readable and a device-writable buffer from the driver's heap. */
function goodBuffers(driver: VirtioDriver): [GuestBuffer, GuestBuffer] {
  return [
    { addr: driver.allocate(CHAIN_BYTES), len: CHAIN_BYTES, writable: false },
    { addr: driver.allocate(CHAIN_BYTES), len: CHAIN_BYTES, writable: true },
  ];
}

/**
 * Guest address of the head descriptor of the chain the next add() writes.
 * Split: descriptor `id` of the table. Packed: the next available slot, read
 * before the add.
 */
function headAddress(queue: DriverQueue, add: () => number): { id: number; head: number } {
  const before = 'availPosition' in queue.ring ? queue.ring.availPosition.slot : -1;
  const id = add();
  const slot = before >= 0 ? before : id;
  return { id, head: queue.config.descAddr + 16 * slot };
}

/**
 * Patches a split head descriptor's flags and next index. The ring driver
 * recycles a one-descriptor chain without following `next`, so the free list
 * survives the corruption.
 */
function patchSplitHead(driver: VirtioDriver, queue: DriverQueue, flags: number, next: (id: number) => number): number {
  const { id, head } = headAddress(queue, () => queue.add([{ addr: driver.allocate(CHAIN_BYTES), len: CHAIN_BYTES, writable: true }], { indirect: false }));
  driver.memory.setU16(head + 12, driver.memory.getU16(head + 12) | flags);
  driver.memory.setU16(head + 14, next(id));
  return id;
}

/** An indirect chain of two good buffers whose head (the table descriptor) or table is then patched. */
function indirectChain(driver: VirtioDriver, queue: DriverQueue, patch: (memory: GuestMemory, head: number, table: number) => void): number {
  const { id, head } = headAddress(queue, () => queue.add(goodBuffers(driver), { indirect: true }));
  patch(driver.memory, head, Number(driver.memory.getU64(head)));
  return id;
}

/**
 * The malformed chains the suite feeds every device (spec 2.7.4.2, 2.7.5,
 * 2.8.17, 2.8.19, and guest memory bounds). Each is refused by the virtqueue with a
 * ChainFault; the device must complete it and keep serving.
 */
export const MALFORMED_CHAINS: readonly MalformedChain[] = [
  {
    name: 'a buffer outside guest memory',
    build: (driver, queue) => {
      const [, writable] = goodBuffers(driver);
      return queue.add([{ addr: memoryEnd(driver.memory) + 0x10000, len: CHAIN_BYTES, writable: false }, writable], { indirect: false });
    },
  },
  {
    name: 'a buffer running past the end of guest memory',
    build: (driver, queue) => {
      const [readable] = goodBuffers(driver);
      return queue.add([readable, { addr: memoryEnd(driver.memory) - 8, len: CHAIN_BYTES, writable: true }], { indirect: false });
    },
  },
  {
    name: 'a device-readable buffer after a device-writable one (spec 2.7.4.2, 2.8.17)',
    build: (driver, queue) => {
      const [readable, writable] = goodBuffers(driver);
      return queue.add([writable, readable], { indirect: false });
    },
  },
  {
    name: 'a next index beyond the queue size (spec 2.7.5)',
    layout: 'split',
    build: (driver, queue) => patchSplitHead(driver, queue, VIRTQ_DESC_F_NEXT, () => queue.size + 3),
  },
  {
    name: 'a descriptor chained to itself, a loop (spec 2.7.5.2)',
    layout: 'split',
    build: (driver, queue) => patchSplitHead(driver, queue, VIRTQ_DESC_F_NEXT, (id) => id),
  },
  {
    name: 'an indirect descriptor with VIRTQ_DESC_F_NEXT (spec 2.7.5.3.1)',
    layout: 'split',
    indirect: true,
    build: (driver, queue) => patchSplitHead(driver, queue, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, (id) => (id + 1) % queue.size),
  },
  {
    name: 'an indirect table whose length is not a multiple of 16 (spec 2.7.5.3.1, 2.8.19)',
    indirect: true,
    build: (driver, queue) => indirectChain(driver, queue, (memory, head) => memory.setU32(head + 8, 2 * 16 - 1)),
  },
  {
    name: 'an indirect table of length 0',
    indirect: true,
    build: (driver, queue) => indirectChain(driver, queue, (memory, head) => memory.setU32(head + 8, 0)),
  },
  {
    name: 'an indirect table outside guest memory',
    indirect: true,
    build: (driver, queue) => indirectChain(driver, queue, (memory, head) => memory.setU64(head, BigInt(memoryEnd(memory) + 0x10000))),
  },
  {
    // Split only: in a packed table every flag but WRITE is reserved and ignored by the device (spec 2.8.7).
    name: 'an indirect descriptor inside an indirect table (spec 2.7.5.3.1)',
    layout: 'split',
    indirect: true,
    build: (driver, queue) => indirectChain(driver, queue, (memory, _head, table) => memory.setU16(table + 12, memory.getU16(table + 12) | VIRTQ_DESC_F_INDIRECT)),
  },
  {
    name: 'an indirect table entry whose next index is beyond the table',
    layout: 'split',
    indirect: true,
    build: (driver, queue) => indirectChain(driver, queue, (memory, _head, table) => memory.setU16(table + 14, 7)),
  },
  {
    name: 'an indirect descriptor without VIRTIO_F_INDIRECT_DESC negotiated',
    indirect: false,
    build: (driver, queue) => queue.add(goodBuffers(driver), { indirect: true }),
  },
];

/** The malformed chains that can be written to a queue with this layout and negotiation. */
export function malformedChainsFor(packed: boolean, indirect: boolean): MalformedChain[] {
  return MALFORMED_CHAINS.filter(
    (c) => (c.layout === undefined || c.layout === (packed ? 'packed' : 'split')) && (c.indirect === undefined || c.indirect === indirect),
  );
}
