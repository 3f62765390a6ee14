/**
 * Property tests: random valid traffic round-trips exactly through both
 * layouts, and random (hostile) ring contents never throw, never hang and never
 * write outside guest RAM.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ringFeatures, sameBytes, swap16, swap32, type RingOptions } from '../../test/harness.js';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing, type GuestBuffer } from '../testing/index.js';
import type { DescriptorChain } from './chain.js';
import { createVirtqueue } from './create.js';
import type { Virtqueue } from './virtqueue.js';

/** xorshift32, for bulk random bytes derived from one fast-check seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

function bytesFrom(seed: number, len: number): Uint8Array {
  const next = rng(seed);
  const words = new Uint32Array(Math.ceil(len / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return new Uint8Array(words.buffer, 0, len);
}

const chainArb = fc
  .record({
    readable: fc.array(fc.integer({ min: 0, max: 700 }), { maxLength: 4 }),
    writable: fc.array(fc.integer({ min: 0, max: 700 }), { maxLength: 4 }),
    indirect: fc.boolean(),
    /** Fraction of the writable part the device fills. */
    fill: fc.double({ min: 0, max: 1, noNaN: true }),
    /** Read through the copying reader (true) or zero-copy slices (false). */
    copy: fc.boolean(),
  })
  .filter((c) => c.readable.length + c.writable.length > 0);

const scenarioArb = fc.record({
  packed: fc.boolean(),
  /** Split rings: a legacy big-endian ring (spec 2.7.3) instead of a little-endian one. */
  bigEndian: fc.boolean(),
  eventIdx: fc.boolean(),
  indirect: fc.boolean(),
  inOrder: fc.boolean(),
  splitSizeLog2: fc.integer({ min: 1, max: 5 }),
  packedSize: fc.integer({ min: 2, max: 24 }),
  seed: fc.integer(),
  rounds: fc.array(fc.array(chainArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 8 }),
});

interface Offered {
  readonly id: number;
  readonly readable: readonly GuestBuffer[];
  readonly writable: readonly GuestBuffer[];
  readonly sent: Uint8Array;
  readonly fill: number;
  readonly copy: boolean;
}

/** Reads a chain's whole readable part, by copy or through zero-copy slices. */
function readAll(chain: DescriptorChain, copy: boolean): Uint8Array {
  const out = new Uint8Array(chain.readableLength);
  if (copy) {
    chain.reader.read(out);
  } else {
    let off = 0;
    for (const part of chain.reader.slices()) {
      out.set(part, off);
      off += part.length;
    }
  }
  return out;
}

function gather(memory: GuestMemory, buffers: readonly GuestBuffer[]): Uint8Array {
  const out = new Uint8Array(buffers.reduce((n, b) => n + b.len, 0));
  let off = 0;
  for (const b of buffers) {
    memory.read(b.addr, out.subarray(off, off + b.len));
    off += b.len;
  }
  return out;
}

/** The ring options of a scenario: big-endian only for a split ring. */
function ringOptions(s: { readonly packed: boolean; readonly bigEndian: boolean } & RingOptions): RingOptions {
  return { ...s, byteOrder: !s.packed && s.bigEndian ? 'big-endian' : 'little-endian' };
}

describe('properties: valid chains round-trip exactly', () => {
  it('spec 2.7 / 2.7.3 / 2.8: what the driver offers the device reads, what the device writes lands where the driver expects, in either split byte order', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const options = ringOptions(s);
        // Two adjacent RAM regions, so buffers and indirect tables may straddle 0x10000.
        const memory = new GuestMemory([
          { guestAddress: 0, buffer: new ArrayBuffer(0x10000) },
          { guestAddress: 0x10000, buffer: new ArrayBuffer(0x10000) },
        ]);
        const size = s.packed ? s.packedSize : 1 << s.splitSizeLog2;
        const ringAlloc = new GuestAllocator(0x1000, 0x8000, { seed: s.seed });
        const config = s.packed ? placePackedRing(ringAlloc, size) : placeSplitRing(ringAlloc, size);
        const driver = s.packed
          ? new PackedRingDriver(memory, config, { eventIdx: s.eventIdx })
          : new SplitRingDriver(memory, config, { eventIdx: s.eventIdx, byteOrder: options.byteOrder ?? 'little-endian' });
        let interrupts = 0;
        const corruptions: string[] = [];
        const queue = createVirtqueue(memory, config, {
          index: 0,
          features: ringFeatures(s.packed, options),
          byteOrder: options.byteOrder ?? 'little-endian',
          hooks: { interrupt: () => interrupts++, corrupt: (r) => corruptions.push(r) },
        });
        const alloc = new GuestAllocator(0x8000, 0x20000, { seed: s.seed ^ 0x5a5a, maxGap: 200 });
        const shuffle = rng(s.seed ^ 0x1234);
        for (const round of s.rounds) {
          alloc.reset();
          const offered: Offered[] = [];
          for (const c of round) {
            const indirect = s.indirect && c.indirect;
            const slots = indirect ? 1 : c.readable.length + c.writable.length;
            if (slots > driver.free || (s.packed && offered.length === size)) break;
            const readable = c.readable.map((len) => ({ addr: alloc.alloc(len), len, writable: false }));
            const writable = c.writable.map((len) => ({ addr: alloc.alloc(len), len, writable: true }));
            const sent = bytesFrom(s.seed + offered.length, readable.reduce((n, b) => n + b.len, 0));
            let off = 0;
            for (const b of readable) {
              memory.write(b.addr, sent.subarray(off, off + b.len));
              off += b.len;
            }
            const table = indirect ? alloc.alloc(16 * (readable.length + writable.length), 16) : undefined;
            const id = driver.add([...readable, ...writable], table === undefined ? {} : { indirectTable: table });
            offered.push({ id, readable, writable, sent, fill: c.fill, copy: c.copy });
          }
          if (offered.length === 0) continue;
          driver.publish();

          // The device pops everything, checks it, and completes in a random order.
          const popped: { chain: DescriptorChain; offer: Offered; written: number }[] = [];
          for (const offer of offered) {
            const chain = queue.pop();
            expect(chain).not.toBeNull();
            if (chain === null) return;
            expect(chain.fault).toBe(0);
            expect(chain.id).toBe(offer.id);
            expect(chain.readableLength).toBe(offer.sent.length);
            expect(chain.writableLength).toBe(offer.writable.reduce((n, b) => n + b.len, 0));
            expect(sameBytes(readAll(chain, offer.copy), offer.sent)).toBe(true);
            const written = Math.floor(chain.writableLength * offer.fill);
            expect(chain.writer.write(bytesFrom(offer.id * 7 + 1, written))).toBe(written);
            popped.push({ chain, offer, written });
          }
          expect(queue.pop()).toBeNull();
          const order = popped.map((p, i) => ({ p, key: shuffle() + i })).sort((a, b) => a.key - b.key).map((x) => x.p);
          for (const p of order) queue.addUsed(p.chain, p.chain.writer.bytesWritten);
          queue.flush();

          const expected = s.inOrder ? popped : order;
          for (const p of expected) {
            expect(driver.takeUsed()).toEqual({ id: p.offer.id, len: p.written });
            expect(sameBytes(gather(memory, p.offer.writable).subarray(0, p.written), bytesFrom(p.offer.id * 7 + 1, p.written))).toBe(true);
            expect(sameBytes(gather(memory, p.offer.readable), p.offer.sent)).toBe(true);
          }
          expect(driver.takeUsed()).toBeNull();
        }
        expect(queue.inFlight).toBe(0);
        expect(corruptions).toEqual([]);
      }),
      { numRuns: 300 },
    );
  }, 60_000);
});

/** Guest memory for the hostile rings: RAM, a hole, a ROM. */
const RAM_START = 0;
const RAM_SIZE = 0x20000;
const ROM_START = 0x40000;
const ROM_SIZE = 0x1000;

/** Mostly plausible addresses in RAM, then region edges, the hole, the ROM, and any 64-bit value. */
const addrArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0x4000, max: RAM_SIZE - 1 }), weight: 8 },
  { arbitrary: fc.constantFrom(0x4000, 0x4000, 0, RAM_SIZE - 1, RAM_SIZE - 8, RAM_SIZE, ROM_START, ROM_START + ROM_SIZE - 4, ROM_START + ROM_SIZE, 0x30000), weight: 2 },
  { arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), weight: 1 },
);
const lenArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 512 }), weight: 8 },
  { arbitrary: fc.constantFrom(16, 32, 48, 0x1000, 0x10000, 0x7fffffff, 0xffffffff), weight: 2 },
  { arbitrary: fc.nat({ max: 0xffffffff }), weight: 1 },
);
/** Flag bits that mean something (NEXT, WRITE, INDIRECT), with the packed AVAIL/USED pairs, or anything. */
const flagsArb = fc.oneof(
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom(0, 0x80, 0x8000, 0x8080)).map(([f, w]) => f | w), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);

interface RawDesc {
  readonly addr: number | bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

const rawDescArb: fc.Arbitrary<RawDesc> = fc.record({
  addr: addrArb,
  len: lenArb,
  flags: flagsArb,
  next: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 40 }), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }),
});

/**
 * A step of a hostile driver: offer a chain the way a driver would (with random
 * descriptors), rewrite a descriptor or indirect table entry, move the ring
 * indices, or let the device run.
 */
const stepArb = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('offer' as const),
      descs: fc.array(rawDescArb, { minLength: 1, maxLength: 5 }),
      indices: fc.array(fc.nat({ max: 63 }), { minLength: 5, maxLength: 5 }),
    }),
    weight: 8,
  },
  { arbitrary: fc.record({ kind: fc.constant('desc' as const), index: fc.nat({ max: 63 }), desc: rawDescArb }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('table' as const), index: fc.nat({ max: 15 }), desc: rawDescArb }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('avail' as const), slot: fc.nat({ max: 63 }), value: fc.oneof(fc.nat({ max: 40 }), fc.nat({ max: 0xffff })) }), weight: 3 },
  {
    arbitrary: fc.record({
      kind: fc.constant('idx' as const),
      delta: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 4 }), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('event' as const), value: fc.nat({ max: 0xffff }), flags: fc.nat({ max: 0xffff }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('run' as const), pops: fc.integer({ min: 1, max: 80 }), complete: fc.double({ min: 0, max: 1, noNaN: true }) }), weight: 3 },
);

const hostileArb = fc.record({
  packed: fc.boolean(),
  /** Split rings: a legacy big-endian ring (spec 2.7.3). */
  bigEndian: fc.boolean(),
  eventIdx: fc.boolean(),
  indirect: fc.boolean(),
  inOrder: fc.boolean(),
  sizeLog2: fc.integer({ min: 0, max: 5 }),
  packedSize: fc.integer({ min: 1, max: 40 }),
  garbage: fc.integer(),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'large' }),
});

describe('properties: hostile rings', () => {
  it('random descriptor tables, ring indices and packed flags never throw, always end, never write outside guest RAM, in either split byte order', () => {
    fc.assert(
      fc.property(hostileArb, (h) => {
        const options = ringOptions(h);
        // Guest RAM and a ROM are windows into one buffer painted with a canary: any device
        // write outside RAM would show there. Reads outside cannot happen by construction:
        // the device reaches guest memory only through each region's own subarray views.
        const CANARY = 0xa5;
        const backing = new ArrayBuffer(0x80000);
        const all = new Uint8Array(backing).fill(CANARY);
        const ramOffset = 0x10000;
        const romOffset = 0x50000;
        const memory = new GuestMemory([
          { guestAddress: RAM_START, buffer: backing, byteOffset: ramOffset, size: RAM_SIZE },
          { guestAddress: ROM_START, buffer: backing, byteOffset: romOffset, size: ROM_SIZE, readonly: true },
        ]);
        // The driver's ring fields, in the ring's byte order.
        const bigEndian = options.byteOrder === 'big-endian';
        const set16 = (at: number, value: number): void => memory.setU16(at, bigEndian ? swap16(value) : value);
        const set32 = (at: number, value: number): void => memory.setU32(at, bigEndian ? swap32(value) : value);
        const set64 = (at: number, value: bigint): void => {
          set32(at + (bigEndian ? 4 : 0), Number(value & 0xffffffffn));
          set32(at + (bigEndian ? 0 : 4), Number(value >> 32n));
        };
        // Buffers start out as garbage; the rings are zeroed, as a driver would set them up, and then
        // rewritten at random by the steps.
        const ram = memory.regions[0]!.bytes;
        ram.set(bytesFrom(h.garbage, RAM_SIZE));
        ram.fill(0, 0, 0x4000 + 16 * 16);
        memory.regions[1]!.bytes.set(bytesFrom(h.garbage ^ 1, ROM_SIZE));
        const rom = memory.regions[1]!.bytes.slice();

        const size = h.packed ? h.packedSize : 1 << h.sizeLog2;
        const ringAlloc = new GuestAllocator(0x1000, 0x4000, { seed: h.garbage, maxGap: 64 });
        const config = h.packed ? placePackedRing(ringAlloc, size) : placeSplitRing(ringAlloc, size);
        const tableAddr = 0x4000;
        let corruptions = 0;
        const queue: Virtqueue = createVirtqueue(memory, config, {
          index: 0,
          features: ringFeatures(h.packed, options),
          byteOrder: options.byteOrder ?? 'little-endian',
          hooks: { interrupt: () => undefined, corrupt: () => corruptions++ },
        });
        const writeDesc = (at: number, d: RawDesc): void => {
          set64(at, BigInt(d.addr));
          set32(at + 8, d.len);
          set16(at + 12, h.packed ? d.next : d.flags);
          set16(at + 14, h.packed ? d.flags : d.next);
        };
        const held: DescriptorChain[] = [];
        let availIdx = 0;
        // Packed: where the driver would make its next descriptor available.
        let nextSlot = 0;
        let wrap = 1;
        const payload = new Uint8Array(4096).fill(0x3c);
        const scratch = new Uint8Array(4096);

        /** Lets the device pop up to `pops` chains, completing the first `complete` fraction; true if the ring ran dry. */
        const serve = (pops: number, complete: number): boolean => {
          for (let i = 0; i < pops; i++) {
            const chain = queue.pop();
            if (chain === null) return true;
            if (chain.fault === 0) {
              // At most 4 KiB each way: a hostile chain may describe gigabytes (overlapping buffers).
              const n = Math.min(chain.reader.remaining, scratch.length);
              if (i % 2 === 0) expect(chain.reader.read(scratch.subarray(0, n))).toBe(n);
              else chain.reader.slices(n);
              chain.writer.write(payload);
            }
            // Complete some now, hold some back (completed later, out of order).
            if ((i + 1) / pops <= complete) queue.addUsed(chain, chain.writer.bytesWritten);
            else held.push(chain);
          }
          while (held.length > size) queue.addUsed(held.shift() as DescriptorChain, 0);
          queue.flush();
          return false;
        };

        for (const step of h.steps) {
          switch (step.kind) {
            case 'offer': {
              const n = step.descs.length;
              const meaning = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_INDIRECT;
              if (h.packed) {
                let head = 0;
                step.descs.forEach((d, i) => {
                  const lap = wrap === 1 ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
                  const flags = (d.flags & meaning) | (i < n - 1 ? VIRTQ_DESC_F_NEXT : 0) | lap;
                  // The head's flags go last (spec 2.8.21.1).
                  writeDesc(config.descAddr + 16 * nextSlot, { ...d, flags: i === 0 ? 0 : flags });
                  if (i === 0) head = flags;
                  if (++nextSlot === size) {
                    nextSlot = 0;
                    wrap ^= 1;
                  }
                });
                set16(config.descAddr + 16 * ((nextSlot - n + 2 * size) % size) + 14, head);
              } else {
                const at = step.indices.slice(0, n).map((x) => x % size);
                step.descs.forEach((d, i) => writeDesc(config.descAddr + 16 * at[i]!, { ...d, flags: (d.flags & meaning) | (i < n - 1 ? VIRTQ_DESC_F_NEXT : 0), next: at[i + 1] ?? 0 }));
                set16(config.driverAddr + 4 + 2 * (availIdx % size), at[0]!);
                availIdx = (availIdx + 1) & 0xffff;
                set16(config.driverAddr + 2, availIdx);
              }
              break;
            }
            case 'desc':
              writeDesc(config.descAddr + 16 * (step.index % size), step.desc);
              break;
            case 'table':
              writeDesc(tableAddr + 16 * step.index, step.desc);
              break;
            case 'avail':
              if (!h.packed) set16(config.driverAddr + 4 + 2 * (step.slot % size), step.value);
              break;
            case 'idx':
              availIdx = (availIdx + step.delta) & 0xffff;
              if (!h.packed) set16(config.driverAddr + 2, availIdx);
              break;
            case 'event':
              set16(config.driverAddr + (h.packed ? 0 : 4 + 2 * size), step.value);
              set16(h.packed ? config.driverAddr + 2 : config.driverAddr, h.packed ? step.flags : step.flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
              break;
            case 'run':
              serve(step.pops, step.complete);
              break;
          }
        }
        // Drain: with nothing new offered, the ring runs dry within a bounded number of pops.
        expect(serve(3 * size + 3, 1)).toBe(true);
        for (const chain of held.reverse()) queue.addUsed(chain, 0x7fffffff);
        queue.flush();
        expect(corruptions).toBeLessThanOrEqual(1);
        if (corruptions === 1) expect(queue.pop()).toBeNull();
        expect(queue.inFlight).toBe(0);
        // Nothing outside RAM changed: the canary before, between and after, and the ROM.
        const canary = new Uint8Array(backing.byteLength).fill(CANARY);
        expect(sameBytes(all.subarray(0, ramOffset), canary.subarray(0, ramOffset))).toBe(true);
        expect(sameBytes(all.subarray(ramOffset + RAM_SIZE, romOffset), canary.subarray(ramOffset + RAM_SIZE, romOffset))).toBe(true);
        expect(sameBytes(all.subarray(romOffset + ROM_SIZE), canary.subarray(romOffset + ROM_SIZE))).toBe(true);
        expect(sameBytes(memory.regions[1]!.bytes, rom)).toBe(true);
      }),
      { numRuns: 400 },
    );
  }, 60_000);
});
