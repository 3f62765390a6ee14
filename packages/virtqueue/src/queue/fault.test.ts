import { describe, expect, it } from 'vitest';
import { mustPop, packedFixture, splitFixture, type Fixture, type RingOptions } from '../../test/harness.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../constants.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { PackedRingDriver, SplitRingDriver } from '../testing/index.js';
import { ChainUnderrunError } from './cursor.js';
import { ChainFault, chainFaultName } from './fault.js';

const { NEXT, WRITE, INDIRECT } = { NEXT: VIRTQ_DESC_F_NEXT, WRITE: VIRTQ_DESC_F_WRITE, INDIRECT: VIRTQ_DESC_F_INDIRECT };

/** An address far outside the fixtures' 1 MiB of guest memory. */
const OUTSIDE = 0x4000_0000;

/**
 * Memory with a hole and a read-only region: [0, 1 MiB) RAM, [2 MiB, 2 MiB + 64 KiB) ROM,
 * [4 MiB, 5 MiB) RAM.
 */
function memoryWithHoles(): GuestMemory {
  return new GuestMemory([
    { guestAddress: 0, buffer: new ArrayBuffer(1 << 20) },
    { guestAddress: 2 << 20, buffer: new ArrayBuffer(0x10000), readonly: true },
    { guestAddress: 4 << 20, buffer: new ArrayBuffer(1 << 20) },
  ]);
}

interface Desc {
  readonly addr: number;
  readonly len: number;
  readonly flags: number;
  /** Split only: the next index (defaults to the following descriptor of the list). */
  readonly next?: number;
}

/**
 * Makes one chain available. Split: the list goes to descriptors 4, 5, ...
 * (out of the way of the driver's free list, which hands out 0 first), with
 * `next` defaulting to the following index. Packed: the list goes to the next
 * ring slots with buffer ID 6.
 */
function offer(f: Fixture<SplitRingDriver> | Fixture<PackedRingDriver>, packed: boolean, list: readonly Desc[]): number {
  if (packed) {
    const d = f.driver as PackedRingDriver;
    d.addRaw(list.map((x) => ({ addr: x.addr, len: x.len, id: 6, flags: x.flags })));
    d.publish();
    return 6;
  }
  const d = f.driver as SplitRingDriver;
  list.forEach((x, i) => d.writeDescriptor(4 + i, { addr: x.addr, len: x.len, flags: x.flags, next: x.next ?? 5 + i }));
  d.pushAvail(4);
  d.publish();
  return 4;
}

/** Writes an indirect table in the layout's descriptor format and byte order (split: next defaults to the following entry). */
function table(f: Fixture<SplitRingDriver> | Fixture<PackedRingDriver>, packed: boolean, entries: readonly Desc[]): number {
  const at = f.alloc.alloc(16 * entries.length, 16);
  entries.forEach((x, i) => {
    if (!packed) {
      (f.driver as SplitRingDriver).writeRaw(at + 16 * i, { addr: x.addr, len: x.len, flags: x.flags, next: x.next ?? i + 1 });
      return;
    }
    // packed: le64 addr, le32 len, le16 id, le16 flags (spec 2.8.13).
    f.memory.setU64(at + 16 * i, BigInt(x.addr));
    f.memory.setU32(at + 16 * i + 8, x.len);
    f.memory.setU16(at + 16 * i + 14, x.flags);
    f.memory.setU16(at + 16 * i + 12, 0);
  });
  return at;
}

interface FaultCase {
  readonly title: string;
  readonly fault: ChainFault;
  readonly layouts: readonly ('split' | 'packed')[];
  readonly options?: RingOptions;
  readonly memory?: () => GuestMemory;
  build(f: Fixture<SplitRingDriver> | Fixture<PackedRingDriver>, packed: boolean): readonly Desc[];
}

const buf = (f: Fixture<SplitRingDriver> | Fixture<PackedRingDriver>, len = 8): number => f.alloc.alloc(len);

const cases: readonly FaultCase[] = [
  {
    title: 'spec 2.7.5.2: a next index beyond the queue size',
    fault: ChainFault.DESCRIPTOR_INDEX_OUT_OF_RANGE,
    layouts: ['split'],
    build: (f) => [{ addr: buf(f), len: 8, flags: NEXT, next: 8 }],
  },
  {
    title: 'spec 2.7.5.3: a next index beyond the indirect table',
    fault: ChainFault.DESCRIPTOR_INDEX_OUT_OF_RANGE,
    layouts: ['split'],
    options: { indirect: true },
    build: (f, packed) => [{ addr: table(f, packed, [{ addr: buf(f), len: 8, flags: NEXT, next: 2 }, { addr: buf(f), len: 8, flags: 0 }]), len: 32, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.2: a loop in the descriptor table (a chain longer than the queue size)',
    fault: ChainFault.CHAIN_TOO_LONG,
    layouts: ['split'],
    build: (f) => [
      { addr: buf(f), len: 8, flags: NEXT, next: 5 },
      { addr: buf(f), len: 8, flags: NEXT, next: 4 },
    ],
  },
  {
    title: 'spec 2.7.5.3.1: a loop inside an indirect table',
    fault: ChainFault.CHAIN_TOO_LONG,
    layouts: ['split'],
    options: { indirect: true },
    build: (f, packed) => [{ addr: table(f, packed, [{ addr: buf(f), len: 8, flags: NEXT, next: 1 }, { addr: buf(f), len: 8, flags: NEXT, next: 0 }]), len: 32, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3.1: VIRTQ_DESC_F_INDIRECT inside an indirect table',
    fault: ChainFault.NESTED_INDIRECT,
    layouts: ['split'],
    options: { indirect: true },
    build: (f, packed) => [{ addr: table(f, packed, [{ addr: table(f, packed, [{ addr: buf(f), len: 8, flags: 0 }]), len: 16, flags: INDIRECT }]), len: 16, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3 / 2.8.7: an indirect table whose size is not a multiple of 16',
    fault: ChainFault.INDIRECT_TABLE_SIZE,
    layouts: ['split', 'packed'],
    options: { indirect: true },
    build: (f, packed) => [{ addr: table(f, packed, [{ addr: buf(f), len: 8, flags: 0 }, { addr: buf(f), len: 8, flags: 0 }]), len: 24, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3 / 2.8.7: an empty indirect table',
    fault: ChainFault.INDIRECT_TABLE_SIZE,
    layouts: ['split', 'packed'],
    options: { indirect: true },
    build: (f) => [{ addr: buf(f, 16), len: 0, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3 / 2.8.7: an indirect table of more than 1024 entries in a small queue',
    fault: ChainFault.INDIRECT_TABLE_SIZE,
    layouts: ['split', 'packed'],
    options: { indirect: true },
    build: (f) => [{ addr: buf(f, 16 * 1025), len: 16 * 1025, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3.1 / 2.8.19: VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC',
    fault: ChainFault.INDIRECT_NOT_NEGOTIATED,
    layouts: ['split', 'packed'],
    build: (f, packed) => [{ addr: table(f, packed, [{ addr: buf(f), len: 8, flags: 0 }]), len: 16, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3.1 / 2.8.19: VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT',
    fault: ChainFault.INDIRECT_WITH_NEXT,
    layouts: ['split', 'packed'],
    options: { indirect: true },
    build: (f, packed) => [
      { addr: table(f, packed, [{ addr: buf(f), len: 8, flags: 0 }]), len: 16, flags: INDIRECT | NEXT },
      { addr: buf(f), len: 8, flags: WRITE },
    ],
  },
  {
    title: 'spec 2.8.19: an indirect descriptor inside a list linked by VIRTQ_DESC_F_NEXT',
    fault: ChainFault.INDIRECT_WITH_NEXT,
    layouts: ['packed'],
    options: { indirect: true },
    build: (f, packed) => [
      { addr: buf(f), len: 8, flags: NEXT },
      { addr: table(f, packed, [{ addr: buf(f), len: 8, flags: 0 }]), len: 16, flags: INDIRECT },
    ],
  },
  {
    title: 'spec 2.7.5.2: readable and writable parts adding up to 2^32 bytes',
    fault: ChainFault.LENGTH_OVERFLOW,
    layouts: ['split', 'packed'],
    options: { indirect: true, window: [0x1000, 0x400000] },
    memory: () => GuestMemory.create(8 << 20),
    // 1023 readable entries of 4 MiB and one writable of 4 MiB, all over the same 4 MiB of memory.
    build: (f, packed) => [
      {
        addr: table(f, packed, Array.from({ length: 1024 }, (_, i) => ({ addr: 0x400000, len: 0x400000, flags: i === 1023 ? WRITE : NEXT }))),
        len: 16 * 1024,
        flags: INDIRECT,
      },
    ],
  },
  {
    title: 'spec 2.7.5.2: a buffer beyond the end of guest memory',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    build: () => [{ addr: OUTSIDE, len: 8, flags: 0 }],
  },
  {
    title: 'spec 2.7.5.2: a buffer that straddles the end of guest memory',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    build: () => [{ addr: (1 << 20) - 4, len: 8, flags: WRITE }],
  },
  {
    title: 'spec 2.7.5.2: a buffer in a hole between memory regions',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    memory: memoryWithHoles,
    build: () => [{ addr: 3 << 20, len: 8, flags: 0 }],
  },
  {
    title: 'spec 2.7.5.2: a buffer that runs from RAM into a hole',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    memory: memoryWithHoles,
    build: () => [{ addr: (1 << 20) - 8, len: 16, flags: 0 }],
  },
  {
    title: 'spec 2.7.5.1: a device-writable buffer in read-only memory',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    memory: memoryWithHoles,
    build: () => [{ addr: 2 << 20, len: 8, flags: WRITE }],
  },
  {
    title: 'spec 2.7.5: an address at or above 2^53',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    build: () => [{ addr: 2 ** 53, len: 8, flags: 0 }],
  },
  {
    title: 'spec 2.7.5: an address whose end overflows 2^53',
    fault: ChainFault.BUFFER_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    build: () => [{ addr: 2 ** 53 - 4, len: 0xffffffff, flags: 0 }],
  },
  {
    title: 'spec 2.7.4.2 / 2.8.17: a device-readable descriptor after a device-writable one',
    fault: ChainFault.READABLE_AFTER_WRITABLE,
    layouts: ['split', 'packed'],
    build: (f) => [
      { addr: buf(f), len: 8, flags: WRITE | NEXT },
      { addr: buf(f), len: 8, flags: 0 },
    ],
  },
  {
    title: 'spec 2.7.4.2: a readable entry in an indirect table after a writable direct descriptor',
    fault: ChainFault.READABLE_AFTER_WRITABLE,
    layouts: ['split'],
    options: { indirect: true },
    build: (f, packed) => [
      { addr: buf(f), len: 8, flags: WRITE | NEXT },
      { addr: table(f, packed, [{ addr: buf(f), len: 8, flags: 0 }]), len: 16, flags: INDIRECT },
    ],
  },
  {
    title: 'spec 2.7.5.3 / 2.8.7: an indirect table outside guest memory',
    fault: ChainFault.INDIRECT_TABLE_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    options: { indirect: true },
    build: () => [{ addr: OUTSIDE, len: 32, flags: INDIRECT }],
  },
  {
    title: 'spec 2.7.5.3 / 2.8.7: an indirect table at an address above 2^53',
    fault: ChainFault.INDIRECT_TABLE_OUTSIDE_MEMORY,
    layouts: ['split', 'packed'],
    options: { indirect: true },
    build: () => [{ addr: 2 ** 60, len: 32, flags: INDIRECT }],
  },
];

describe('malformed chains reach the device as faults it completes and moves past', () => {
  it('every ChainFault value is exercised below and has a name', () => {
    const values = Object.values(ChainFault).filter((v) => v !== ChainFault.NONE);
    expect(new Set(cases.map((c) => c.fault))).toEqual(new Set(values));
    for (const v of Object.values(ChainFault)) expect(chainFaultName[v]).toMatch(/\w/);
  });

  for (const c of cases) {
    // Every split case also runs on a legacy big-endian ring (spec 2.7.3): the same checks, other byte order.
    for (const layout of c.layouts.flatMap((l) => (l === 'split' ? ['split', 'split, big-endian'] : [l]))) {
      const packed = layout === 'packed';
      it(`${c.title} (${layout}): ${chainFaultName[c.fault]}`, () => {
        const options: RingOptions = {
          ...c.options,
          ...(c.memory === undefined ? {} : { memory: c.memory() }),
          ...(layout === 'split, big-endian' ? { byteOrder: 'big-endian' as const } : {}),
        };
        const f = packed ? packedFixture(options) : splitFixture(options);
        const id = offer(f, packed, c.build(f, packed));
        const chain = mustPop(f.queue);
        expect(chain.fault).toBe(c.fault);
        expect(chain.id).toBe(id);
        // A faulted chain carries no buffers: nothing to read, nothing to write.
        expect(chain.readableLength).toBe(0);
        expect(chain.writableLength).toBe(0);
        expect(chain.reader.read(new Uint8Array(8))).toBe(0);
        expect(() => chain.reader.readU8()).toThrow(ChainUnderrunError);
        expect(() => chain.writer.writeU8(1)).toThrow(ChainUnderrunError);
        f.queue.addUsed(chain, 100);
        f.queue.flush();
        expect(f.driver.takeUsed()).toEqual({ id, len: 0 });
        // The queue moves on: the next, valid chain is served normally.
        const next = f.alloc.alloc(4);
        f.memory.setU32(next, 0x5a5a5a5a);
        f.driver.add([{ addr: next, len: 4, writable: false }]);
        f.driver.publish();
        const after = mustPop(f.queue);
        expect(after.fault).toBe(ChainFault.NONE);
        expect(after.reader.readU32()).toBe(0x5a5a5a5a);
        expect(f.queue.broken).toBe(false);
        expect(f.corruptions).toEqual([]);
      });
    }
  }

  it('spec 2.7.5.2: a chain of exactly 2^32 - 1 bytes is accepted', () => {
    const f = splitFixture({ indirect: true, memory: GuestMemory.create(8 << 20), window: [0x1000, 0x400000] });
    const entries = Array.from({ length: 1024 }, (_, i) => ({ addr: 0x400000, len: i === 1023 ? 0x3fffff : 0x400000, flags: i === 1023 ? WRITE : NEXT }));
    offer(f, false, [{ addr: table(f, false, entries), len: 16 * 1024, flags: INDIRECT }]);
    const chain = mustPop(f.queue);
    expect(chain.fault).toBe(ChainFault.NONE);
    expect(chain.readableLength + chain.writableLength).toBe(0xffffffff);
    expect(chain.writableLength).toBe(0x3fffff);
  });

  it('spec 2.8.17: a list of exactly the queue size is accepted (packed)', () => {
    const f = packedFixture({ size: 4 });
    f.driver.addRaw(Array.from({ length: 4 }, (_, i) => ({ addr: f.alloc.alloc(4), len: 4, id: 2, flags: i < 3 ? NEXT : WRITE })));
    f.driver.publish();
    const chain = mustPop(f.queue);
    expect(chain).toMatchObject({ id: 2, fault: ChainFault.NONE, readableLength: 12, writableLength: 4, descriptorCount: 4 });
  });

  it('spec 2.7.5.3.1: a chain of exactly the queue size is accepted (split)', () => {
    const f = splitFixture({ size: 4 });
    const head = f.driver.add(Array.from({ length: 4 }, (_, i) => ({ addr: f.alloc.alloc(4), len: 4, writable: i === 3 })));
    f.driver.publish();
    expect(mustPop(f.queue)).toMatchObject({ id: head, fault: ChainFault.NONE, descriptorCount: 4 });
  });

  it('spec 2.7.5.2: zero-length descriptors count towards the chain but need no memory', () => {
    const f = splitFixture();
    offer(f, false, [
      { addr: OUTSIDE, len: 0, flags: NEXT },
      { addr: f.alloc.alloc(4), len: 4, flags: WRITE },
    ]);
    expect(mustPop(f.queue)).toMatchObject({ fault: ChainFault.NONE, descriptorCount: 2, readableLength: 0, writableLength: 4 });
  });
});
