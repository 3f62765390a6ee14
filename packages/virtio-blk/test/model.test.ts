/**
 * Property: random streams of requests, with random descriptor framing and
 * several requests in flight at once, behave like a simple model of a disk
 * written from the spec's rules (spec 5.2.6) — every status, every byte read,
 * and the image afterwards.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { coreTransportFactory, type TransportFactory } from '@virtio-ts/driver';
import { DeviceStatus, GuestMemory } from '@virtio-ts/virtqueue';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MemoryBackend,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VirtioBlk,
  type BlockBackend,
} from '../src/index.js';
import { FileBackend } from '../src/node/index.js';
import { NAMED_TRANSPORTS, add, header, patterned, segments, start, type BlkRequest } from './setup.js';

const CAPACITY = 96;
const MAX_SEGMENTS = 3;
const MAX_RANGE_SECTORS = 16;
const SERIAL = 'model-disk';

type Segment = { sector: number; sectors: number; flags: number };
type Command =
  | { kind: 'read'; sector: number; bytes: number; cuts: number[] }
  | { kind: 'write'; sector: number; bytes: number; seed: number; cuts: number[] }
  | { kind: 'flush' }
  | { kind: 'discard' | 'zeroes'; segments: Segment[] }
  | { kind: 'getId'; inLen: number }
  | { kind: 'unknown'; type: number };

const sector = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: CAPACITY + 4 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 40, 2 ** 53, 2 ** 63) });
const dataBytes = fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 8 }).map((n) => n * 512) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4096 }) });
const cuts = fc.array(fc.integer({ min: 1, max: 4200 }), { maxLength: 4 });
const segment = fc.record({
  sector: fc.integer({ min: 0, max: CAPACITY + 4 }),
  sectors: fc.integer({ min: 0, max: MAX_RANGE_SECTORS + 2 }),
  flags: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(2, 0x80000000) }),
});
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('read' as const), sector, bytes: dataBytes, cuts }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), sector, bytes: dataBytes, seed: fc.integer({ min: 0, max: 255 }), cuts }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('discard' as const, 'zeroes' as const), segments: fc.array(segment, { minLength: 0, maxLength: MAX_SEGMENTS + 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('getId' as const), inLen: fc.integer({ min: 16, max: 24 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unknown' as const), type: fc.constantFrom(2, 3, 9, 12, 16, 0x80000000) }) },
);

/** The model disk: expected bytes, and which sectors have a defined content (a discard undefines them). */
class ModelDisk {
  readonly bytes: Uint8Array;
  readonly known = new Uint8Array(CAPACITY).fill(1);
  constructor(
    initial: Uint8Array,
    readonly blockSectors: number,
  ) {
    this.bytes = initial.slice();
  }

  /** The status spec 5.2.6 gives `c`, decided from the rules alone. */
  status(c: Command): number {
    const inCapacity = (s: number, n: number): boolean => s + n <= CAPACITY;
    switch (c.kind) {
      case 'read':
      case 'write':
        return c.bytes % 512 === 0 && inCapacity(c.sector, c.bytes / 512) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      case 'flush':
        return VIRTIO_BLK_S_OK;
      case 'getId':
        return c.inLen === 20 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      case 'unknown':
        return VIRTIO_BLK_S_UNSUPP;
      case 'discard':
      case 'zeroes': {
        if (c.segments.length === 0 || c.segments.length > MAX_SEGMENTS) return VIRTIO_BLK_S_IOERR;
        const allowed = c.kind === 'zeroes' ? 1 : 0;
        if (c.segments.some((s) => (s.flags & ~allowed) !== 0)) return VIRTIO_BLK_S_UNSUPP;
        const bad = c.segments.some((s) => s.sectors > MAX_RANGE_SECTORS || s.sector % this.blockSectors !== 0 || s.sectors % this.blockSectors !== 0 || !inCapacity(s.sector, s.sectors));
        return bad ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
      }
    }
  }

  /** Applies a command that succeeded. */
  apply(c: Command): void {
    if (c.kind === 'write') {
      this.bytes.set(patterned(c.bytes, c.seed), c.sector * 512);
      this.known.fill(1, c.sector, c.sector + c.bytes / 512);
    } else if (c.kind === 'zeroes') {
      for (const s of c.segments) {
        this.bytes.fill(0, s.sector * 512, (s.sector + s.sectors) * 512);
        this.known.fill(1, s.sector, s.sector + s.sectors);
      }
    } else if (c.kind === 'discard') {
      for (const s of c.segments) this.known.fill(0, s.sector, s.sector + s.sectors);
    }
  }

  /** Asserts `actual` (bytes from sector `sector`) matches wherever the content is defined. */
  check(actual: Uint8Array, sector: number, what: string): void {
    for (let s = 0; s < actual.length / 512; s++) {
      if (this.known[sector + s] !== 1) continue;
      const at = (sector + s) * 512;
      for (let i = 0; i < 512; i++) {
        if (actual[s * 512 + i] !== this.bytes[at + i]) throw new Error(`${what}: sector ${sector + s} byte ${i} is ${actual[s * 512 + i]}, expected ${this.bytes[at + i]}`);
      }
    }
  }
}

/** Sector ranges a command touches, and whether it changes them. */
function footprint(c: Command): { ranges: [number, number][]; writes: boolean } {
  switch (c.kind) {
    case 'read':
    case 'write':
      return { ranges: [[c.sector, c.sector + Math.ceil(c.bytes / 512)]], writes: c.kind === 'write' };
    case 'discard':
    case 'zeroes':
      return { ranges: c.segments.map((s) => [s.sector, s.sector + s.sectors] as [number, number]), writes: true };
    default:
      return { ranges: [], writes: false };
  }
}

/** Drops commands whose ranges conflict with an earlier one in the batch: concurrent overlapping writes have no defined order. */
function independent(batch: readonly Command[]): Command[] {
  const kept: { ranges: [number, number][]; writes: boolean }[] = [];
  const out: Command[] = [];
  for (const c of batch) {
    const f = footprint(c);
    const clash = kept.some((k) => (k.writes || f.writes) && k.ranges.some(([a, b]) => f.ranges.some(([x, y]) => x < b && a < y)));
    if (clash) continue;
    kept.push(f);
    out.push(c);
  }
  return out;
}

function request(c: Command): BlkRequest {
  switch (c.kind) {
    case 'read':
      return { type: VIRTIO_BLK_T_IN, sector: BigInt(c.sector), inLen: c.bytes, writableCuts: c.cuts };
    case 'write':
      return { type: VIRTIO_BLK_T_OUT, sector: BigInt(c.sector), out: patterned(c.bytes, c.seed), readableCuts: c.cuts };
    case 'flush':
      return { type: VIRTIO_BLK_T_FLUSH };
    case 'discard':
    case 'zeroes':
      return { type: c.kind === 'discard' ? VIRTIO_BLK_T_DISCARD : VIRTIO_BLK_T_WRITE_ZEROES, out: segments(c.segments), readableCuts: [7, 16, 30] };
    case 'getId':
      return { type: VIRTIO_BLK_T_GET_ID, inLen: c.inLen };
    case 'unknown':
      return { type: c.type, inLen: 512 };
  }
}

async function runStream(
  backend: BlockBackend,
  image: () => Promise<Uint8Array>,
  initial: Uint8Array,
  blockSectors: number,
  transport: TransportFactory,
  packed: boolean,
  batches: Command[][],
): Promise<void> {
  const blk = new VirtioBlk({ backend, serial: SERIAL, blockSize: 512 * blockSectors, discard: { maxSectors: MAX_RANGE_SECTORS, maxSegments: MAX_SEGMENTS }, writeZeroes: { maxSectors: MAX_RANGE_SECTORS, maxSegments: MAX_SEGMENTS } });
  const driver = await start(transport, GuestMemory.create(4 << 20), blk, { packed });
  const model = new ModelDisk(initial, blockSectors);
  for (const raw of batches) {
    const batch = independent(raw);
    const pending = batch.map((c) => add(driver, request(c)));
    driver.queue(0).kick();
    const done = await Promise.all(pending);
    batch.forEach((c, i) => {
      const got = done[i];
      const want = model.status(c);
      if (got?.status !== want) throw new Error(`${JSON.stringify(c)}: status ${got?.status}, expected ${want}`);
      if (want !== VIRTIO_BLK_S_OK) return;
      if (c.kind === 'read') model.check(got.data, c.sector, `read at ${c.sector}`);
      if (c.kind === 'getId') expect(new TextDecoder().decode(got.data.subarray(0, SERIAL.length))).toBe(SERIAL);
      model.apply(c);
    });
  }
  model.check((await image()).subarray(0, CAPACITY * 512), 0, 'image');
}

const stream = fc.array(fc.array(command, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 });
const blockSectors = fc.constantFrom(1, 2, 8);

describe.each(NAMED_TRANSPORTS)('random request streams against a model disk (over %s)', (_name, transport) => {
  it.each([false, true])('memory backend, packed=%s', async (packed) => {
    await fc.assert(
      fc.asyncProperty(stream, blockSectors, async (batches, bs) => {
        const initial = patterned(CAPACITY * 512, 1);
        const backend = new MemoryBackend(initial.slice());
        await runStream(backend, async () => backend.bytes, initial, bs, transport, packed, batches);
      }),
      { numRuns: 60 },
    );
  });
});

describe('random request streams against a model disk, file backend', () => {
  it('file image (positional I/O, readv/writev, fallocate)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virtio-blk-model-'));
    try {
      await fc.assert(
        fc.asyncProperty(stream, blockSectors, fc.boolean(), async (batches, bs, packed) => {
          const path = join(dir, 'disk.img');
          const initial = patterned(CAPACITY * 512, 2);
          await writeFile(path, initial);
          const backend = await FileBackend.open(path);
          try {
            await runStream(backend, async () => new Uint8Array(await readFile(path)), initial, bs, coreTransportFactory, packed, batches);
          } finally {
            await backend.close();
          }
        }),
        { numRuns: 25 },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('hostile requests (fast-check)', () => {
  it('random headers, payloads and framings always complete with OK, IOERR or UNSUPP and never break the device', async () => {
    const request = fc.record({
      type: fc.oneof(fc.constantFrom(0, 1, 4, 5, 8, 10, 11, 13, 14), fc.integer({ min: 0, max: 0xffffffff })),
      sector: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      headerLength: fc.oneof({ weight: 4, arbitrary: fc.constant(16) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) }),
      out: fc.uint8Array({ maxLength: 1100 }),
      inLen: fc.integer({ min: 0, max: 1100 }),
      statusLen: fc.integer({ min: 0, max: 3 }),
      readableCuts: cuts,
      writableCuts: cuts,
    });
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 12 }), fc.boolean(), async (requests, packed) => {
        const backend = new MemoryBackend(patterned(CAPACITY * 512, 4));
        const blk = new VirtioBlk({ backend, lifetime: () => ({ preEolInfo: 1, deviceLifetimeEstTypA: 1, deviceLifetimeEstTypB: 1 }), secureErase: true });
        const driver = await start(coreTransportFactory, GuestMemory.create(4 << 20), blk, { packed });
        const pending = requests.map((r) =>
          add(driver, {
            type: r.type,
            header: header(r.type, r.sector).subarray(0, r.headerLength),
            out: r.out,
            inLen: r.inLen,
            statusLen: r.statusLen,
            readableCuts: r.readableCuts,
            writableCuts: r.writableCuts,
          }),
        );
        driver.queue(0).kick();
        const done = await Promise.all(pending);
        done.forEach((c, i) => {
          const r = requests[i] as (typeof requests)[number];
          const writable = r.inLen + r.statusLen;
          if (writable === 0) expect(c.len).toBe(0);
          else {
            // The status is the last writable byte, wherever the guest meant its status to be.
            const status = c.status ?? c.data[c.data.length - 1];
            expect([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP]).toContain(status);
            // spec 2.7.8: the used length is what was written: the data only when a request that returns data succeeded.
            const filled = status === VIRTIO_BLK_S_OK && [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_GET_LIFETIME].includes(r.type);
            expect(c.len).toBe(filled ? writable : 1);
          }
        });
        expect(driver.status & DeviceStatus.DEVICE_NEEDS_RESET).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});
