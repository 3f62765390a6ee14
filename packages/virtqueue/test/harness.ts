/**
 * Test fixtures shared by the package's tests: guest memory, a guest-side ring
 * driver from ./testing, and the device-side queue under test, wired together.
 */
import {
  GuestMemory,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  createVirtqueue,
  featureBit,
  type ByteOrder,
  type QueueConfig,
  type QueuePosition,
  type Virtqueue,
} from '../src/index.js';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing } from '../src/testing/index.js';

/** Ring features a fixture negotiates. */
export interface RingOptions {
  readonly size?: number;
  readonly eventIdx?: boolean;
  readonly indirect?: boolean;
  readonly inOrder?: boolean;
  /** Split rings only: 'big-endian' makes a legacy ring without VIRTIO_F_VERSION_1 (spec 2.7.3). */
  readonly byteOrder?: ByteOrder;
  /** Guest memory to use; defaults to 1 MiB at guest address 0. */
  readonly memory?: GuestMemory;
  /** Window the allocator places rings and buffers in; defaults to [0x1000, end of the first region). */
  readonly window?: readonly [number, number];
  readonly seed?: number;
}

/** A device-side queue with its guest-side driver, and everything the queue's hooks reported. */
export class Fixture<D> {
  /** Interrupts raised through hooks.interrupt. */
  interrupts = 0;
  /** Reasons passed to hooks.corrupt. */
  readonly corruptions: string[] = [];
  queue: Virtqueue;

  constructor(
    readonly memory: GuestMemory,
    readonly alloc: GuestAllocator,
    readonly config: QueueConfig,
    readonly driver: D,
    readonly features: bigint,
    readonly byteOrder: ByteOrder = 'little-endian',
  ) {
    this.queue = this.create(undefined);
  }

  /** A u16 ring field at `addr`, in the ring's byte order. */
  ringU16(addr: number): number {
    const value = this.memory.getU16(addr);
    return this.byteOrder === 'big-endian' ? swap16(value) : value;
  }

  /** A u32 ring field at `addr`, in the ring's byte order. */
  ringU32(addr: number): number {
    const value = this.memory.getU32(addr);
    return this.byteOrder === 'big-endian' ? swap32(value) : value;
  }

  /** Replaces the queue with a new one on the same rings, resuming at `start`. */
  recreate(start?: QueuePosition): Virtqueue {
    this.queue = this.create(start);
    return this.queue;
  }

  private create(start: QueuePosition | undefined): Virtqueue {
    return createVirtqueue(this.memory, this.config, {
      index: 0,
      features: this.features,
      byteOrder: this.byteOrder,
      hooks: { interrupt: () => this.interrupts++, corrupt: (reason) => this.corruptions.push(reason) },
      ...(start === undefined ? {} : { start }),
    });
  }
}

/** The feature bits for a ring configuration; a big-endian ring is a legacy one, without VIRTIO_F_VERSION_1. */
export function ringFeatures(packed: boolean, options: RingOptions): bigint {
  return (
    (options.byteOrder === 'big-endian' ? 0n : featureBit(VIRTIO_F_VERSION_1)) |
    (packed ? featureBit(VIRTIO_F_RING_PACKED) : 0n) |
    (options.eventIdx === true ? featureBit(VIRTIO_F_EVENT_IDX) : 0n) |
    (options.indirect === true ? featureBit(VIRTIO_F_INDIRECT_DESC) : 0n) |
    (options.inOrder === true ? featureBit(VIRTIO_F_IN_ORDER) : 0n)
  );
}

function fixture<D>(packed: boolean, options: RingOptions, makeDriver: (memory: GuestMemory, config: QueueConfig) => D): Fixture<D> {
  const memory = options.memory ?? GuestMemory.create(1 << 20);
  const first = memory.regions[0];
  if (first === undefined) throw new Error('fixture: guest memory has no region');
  const [start, end] = options.window ?? [first.guestAddress + 0x1000, first.end];
  const alloc = new GuestAllocator(start, end, { seed: options.seed ?? 1 });
  const size = options.size ?? 8;
  const config = packed ? placePackedRing(alloc, size) : placeSplitRing(alloc, size);
  return new Fixture(memory, alloc, config, makeDriver(memory, config), ringFeatures(packed, options), options.byteOrder);
}

/** A split ring (spec 2.7) with its driver. */
export function splitFixture(options: RingOptions = {}): Fixture<SplitRingDriver> {
  return fixture(false, options, (memory, config) => new SplitRingDriver(memory, config, { eventIdx: options.eventIdx ?? false, byteOrder: options.byteOrder ?? 'little-endian' }));
}

/** A packed ring (spec 2.8) with its driver. */
export function packedFixture(options: RingOptions = {}): Fixture<PackedRingDriver> {
  return fixture(true, options, (memory, config) => new PackedRingDriver(memory, config, { eventIdx: options.eventIdx ?? false }));
}

/** Either layout, for tests that hold for both. */
export function ringFixture(packed: boolean, options: RingOptions = {}): Fixture<SplitRingDriver | PackedRingDriver> {
  return packed ? packedFixture(options) : splitFixture(options);
}

/** Reverses the bytes of a u16. */
export function swap16(value: number): number {
  return ((value & 0xff) << 8) | ((value >>> 8) & 0xff);
}

/** Reverses the bytes of a u32. */
export function swap32(value: number): number {
  return (((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >>> 8) & 0xff00) | (value >>> 24)) >>> 0;
}

/** pop() that fails the test when the ring yields nothing. */
export function mustPop(queue: Virtqueue): NonNullable<ReturnType<Virtqueue['pop']>> {
  const chain = queue.pop();
  if (chain === null) throw new Error('expected a chain, the queue returned null');
  return chain;
}

/** Fills `len` bytes at `addr` with a pattern derived from `seed` and returns it. */
export function pattern(memory: GuestMemory, addr: number, len: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(len);
  for (let i = 0; i < len; i++) bytes[i] = (seed * 31 + i * 7 + (i >>> 8)) & 0xff;
  memory.write(addr, bytes);
  return bytes;
}

/** Whether two byte arrays hold the same bytes (fast enough for whole guest memories). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}
