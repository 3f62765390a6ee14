/**
 * Device-side virtqueue benchmarks. Prints one `BENCH <package> <case> <value>
 * <unit>` line per case.
 *
 * Each case runs in a fresh Node process, so that the JIT's type feedback from
 * one case (say, packed rings) cannot slow down another. In each round the
 * driver side fills the whole ring outside the timed part, with plain typed
 * array stores and no allocation; the timed part is the device's work only:
 * pop every chain (with every validation), complete it, flush once.
 *
 *   node --expose-gc --conditions=@virtio-ts/source --import tsx bench/run.ts [--quick] [--case <name>]
 */
import { spawnSync } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';
import {
  GuestMemory,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
  createVirtqueue,
  featureBit,
  splitRingSizes,
  type QueueConfig,
  type Virtqueue,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';

const PKG = '@virtio-ts/virtqueue';
const QUEUE_SIZE = 256;
const quick = process.argv.includes('--quick');

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${PKG} ${name} ${Math.round(value)} ${unit}`);
}

interface RingCase {
  readonly packed: boolean;
  /** Buffers per chain. */
  readonly descriptors: number;
  readonly indirect: boolean;
  readonly eventIdx: boolean;
  /** Bytes per buffer. */
  readonly bufferSize: number;
  /** Which buffers are device-writable. */
  readonly writable: (index: number, descriptors: number) => boolean;
}

/**
 * A ring full of chains, and a driver that makes all of them available again
 * with a few typed-array stores: the descriptors (or indirect tables) never
 * change, only the available ring (split) or the descriptors' id, len and flags
 * (packed, which the device overwrote with used descriptors).
 */
class Workload {
  readonly queue: Virtqueue;
  readonly chainsPerRound: number;
  readonly memory: GuestMemory;
  /** Guest address of each chain's buffers. */
  readonly buffers: number[][] = [];
  private readonly refillRing: () => void;

  constructor(c: RingCase) {
    this.memory = GuestMemory.create(c.bufferSize * QUEUE_SIZE * c.descriptors + (8 << 20));
    const alloc = new GuestAllocator(0x1000, this.memory.size, { seed: 7, maxGap: 64 });
    const config = c.packed ? placePackedRing(alloc, QUEUE_SIZE) : placeSplitRing(alloc, QUEUE_SIZE);
    const features =
      featureBit(VIRTIO_F_VERSION_1) |
      (c.packed ? featureBit(VIRTIO_F_RING_PACKED) : 0n) |
      (c.indirect ? featureBit(VIRTIO_F_INDIRECT_DESC) : 0n) |
      (c.eventIdx ? featureBit(VIRTIO_F_EVENT_IDX) : 0n);
    this.queue = createVirtqueue(this.memory, config, {
      index: 0,
      features,
      hooks: { interrupt: () => undefined, corrupt: (reason) => { throw new Error(reason); } },
    });
    this.chainsPerRound = c.indirect ? QUEUE_SIZE : Math.floor(QUEUE_SIZE / c.descriptors);
    // Each chain's ring descriptors: [addr, len, flags] with NEXT/WRITE/INDIRECT as a driver would set them.
    const ringDescs: [number, number, number][][] = [];
    for (let i = 0; i < this.chainsPerRound; i++) {
      const bufs = Array.from({ length: c.descriptors }, () => alloc.alloc(c.bufferSize, 8));
      this.buffers.push(bufs);
      const flagsOf = (d: number, chained: boolean): number =>
        (c.writable(d, c.descriptors) ? VIRTQ_DESC_F_WRITE : 0) | (chained && d < c.descriptors - 1 ? VIRTQ_DESC_F_NEXT : 0);
      if (c.indirect) {
        const table = alloc.alloc(16 * c.descriptors, 16);
        // Packed tables are read front to back: only VIRTQ_DESC_F_WRITE matters (spec 2.8.7).
        bufs.forEach((addr, d) => this.writeDesc(table + 16 * d, addr, c.bufferSize, flagsOf(d, !c.packed), c.packed ? 0 : d + 1, c.packed));
        ringDescs.push([[table, 16 * c.descriptors, VIRTQ_DESC_F_INDIRECT]]);
      } else {
        ringDescs.push(bufs.map((addr, d) => [addr, c.bufferSize, flagsOf(d, true)]));
      }
    }
    this.refillRing = c.packed ? this.packedRefill(config, ringDescs) : this.splitRefill(config, ringDescs);
  }

  /** Makes every chain available again. */
  refill(): void {
    this.refillRing();
  }

  private writeDesc(at: number, addr: number, len: number, flags: number, next: number, packed: boolean): void {
    this.memory.setU64(at, BigInt(addr));
    this.memory.setU32(at + 8, len);
    this.memory.setU16(at + (packed ? 14 : 12), flags);
    this.memory.setU16(at + (packed ? 12 : 14), next);
  }

  private splitRefill(config: QueueConfig, chains: [number, number, number][][]): () => void {
    const heads: number[] = [];
    let index = 0;
    for (const chain of chains) {
      heads.push(index);
      chain.forEach(([addr, len, flags], d) => this.writeDesc(config.descAddr + 16 * (index + d), addr, len, flags, index + d + 1, false));
      index += chain.length;
    }
    const avail = this.u16(config.driverAddr, splitRingSizes(QUEUE_SIZE).avail);
    const headsArray = Uint16Array.from(heads);
    let availIdx = 0;
    return () => {
      for (let i = 0; i < headsArray.length; i++) avail[2 + ((availIdx + i) & (QUEUE_SIZE - 1))] = headsArray[i] as number;
      availIdx = (availIdx + headsArray.length) & 0xffff;
      Atomics.store(avail, 1, availIdx);
    };
  }

  private packedRefill(config: QueueConfig, chains: [number, number, number][][]): () => void {
    // Flattened per slot: addr is never overwritten by the device; len, id and flags are.
    const lens: number[] = [];
    const ids: number[] = [];
    const flags: number[] = [];
    chains.forEach((chain, id) =>
      chain.forEach(([addr, len, f]) => {
        this.memory.setU64(config.descAddr + 16 * lens.length, BigInt(addr));
        lens.push(len);
        ids.push(id);
        flags.push(f);
      }),
    );
    if (lens.length !== QUEUE_SIZE) throw new Error('bench: packed chains must fill the ring');
    const desc16 = this.u16(config.descAddr, 16 * QUEUE_SIZE);
    const desc32 = new Uint32Array(desc16.buffer, desc16.byteOffset, 4 * QUEUE_SIZE);
    const lenArray = Uint32Array.from(lens);
    const idArray = Uint16Array.from(ids);
    const flagArray = Uint16Array.from(flags);
    let wrap = 1;
    return () => {
      // Every round fills all slots, one full lap: the wrap counter flips each time.
      const lap = wrap === 1 ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
      let headFlags = 0;
      for (let i = 0; i < lenArray.length; i++) {
        desc32[4 * i + 2] = lenArray[i] as number;
        desc16[8 * i + 6] = idArray[i] as number;
        const f = (flagArray[i] as number) | lap;
        if (i === 0) headFlags = f;
        else desc16[8 * i + 7] = f;
      }
      // The first slot last: it makes the whole lap visible at once (spec 2.8.21.1).
      Atomics.store(desc16, 7, headFlags);
      wrap ^= 1;
    };
  }

  private u16(addr: number, bytes: number): Uint16Array {
    const slice = this.memory.slice(addr, bytes);
    if (slice === undefined) throw new Error('bench: ring outside memory');
    return new Uint16Array(slice.buffer, slice.byteOffset, bytes >>> 1);
  }
}

const lastWritable = (d: number, n: number): boolean => d === n - 1;

/**
 * Runs `round` (the timed part) after `prepare` (untimed) until `total` units
 * are done; returns units per second of the median round. The median keeps the
 * figure honest on a shared machine: a round that another process preempted is
 * an outlier, not a slower device.
 */
function medianRate(prepare: () => void, round: () => number, total: number): number {
  const rates: number[] = [];
  for (let done = 0; done < total; ) {
    prepare();
    const t0 = process.hrtime.bigint();
    const units = round();
    const ns = Number(process.hrtime.bigint() - t0);
    rates.push((units / ns) * 1e9);
    done += units;
  }
  rates.sort((a, b) => a - b);
  return rates[rates.length >> 1] as number;
}

/** Chains per second: pop (validated), complete with length 0, one flush per round. */
function chainsPerSecond(c: RingCase, chains: number): number {
  const w = new Workload(c);
  const q = w.queue;
  return medianRate(
    () => w.refill(),
    () => {
      let done = 0;
      let chain;
      while ((chain = q.pop()) !== null) {
        q.addUsed(chain, 0);
        done++;
      }
      q.flush();
      return done;
    },
    chains,
  );
}

type Transfer = 'read' | 'read-slices' | 'write' | 'write-slices';

/** Bytes per second through the reader or writer of one-buffer chains of `size` bytes. */
function bytesPerSecond(transfer: Transfer, size: number, totalBytes: number): number {
  const reading = transfer === 'read' || transfer === 'read-slices';
  const w = new Workload({ packed: false, descriptors: 1, indirect: false, eventIdx: true, bufferSize: size, writable: () => !reading });
  const q = w.queue;
  const local = new Uint8Array(size).fill(0x5a);
  return medianRate(
    () => w.refill(),
    () => {
      let bytes = 0;
      let chain;
      while ((chain = q.pop()) !== null) {
        switch (transfer) {
          case 'read':
            bytes += chain.reader.read(local);
            break;
          case 'read-slices':
            for (const part of chain.reader.slices()) bytes += part.length;
            break;
          case 'write':
            bytes += chain.writer.write(local);
            break;
          case 'write-slices':
            for (const part of chain.writer.slices()) bytes += part.length;
            break;
        }
        q.addUsed(chain, chain.writer.bytesWritten);
      }
      q.flush();
      return bytes;
    },
    totalBytes,
  );
}

/**
 * Heap after 10 million chains against the heap before (both after a full GC),
 * and the number of garbage collections during the run: with no allocation per
 * chain there are none, whatever the heap size.
 */
async function heapFlatness(chains: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('bench: run node with --expose-gc for the heap case');
  const w = new Workload({ packed: false, descriptors: 1, indirect: false, eventIdx: true, bufferSize: 64, writable: lastWritable });
  const q = w.queue;
  const serve = (n: number): void => {
    let done = 0;
    while (done < n) {
      w.refill();
      let chain;
      while ((chain = q.pop()) !== null) {
        q.addUsed(chain, 0);
        done++;
      }
      q.flush();
    }
  };
  serve(1_000_000);
  gc();
  const before = process.memoryUsage().heapUsed;
  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ['gc'] });
  serve(chains);
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  const during = collections;
  gc();
  const after = process.memoryUsage().heapUsed;
  report(`split-1desc-eventidx-heap-growth-${chains / 1e6}M-chains`, after - before, 'bytes');
  report(`split-1desc-eventidx-gc-runs-${chains / 1e6}M-chains`, during, 'collections');
}

const CHAINS = quick ? 2_000_000 : 10_000_000;
const cases = new Map<string, () => void | Promise<void>>();
for (const packed of [false, true]) {
  for (const descriptors of [1, 4]) {
    for (const indirect of [false, true]) {
      for (const eventIdx of [false, true]) {
        const name = `${packed ? 'packed' : 'split'}-${descriptors}desc${indirect ? '-indirect' : ''}${eventIdx ? '-eventidx' : ''}`;
        cases.set(name, () => report(name, chainsPerSecond({ packed, descriptors, indirect, eventIdx, bufferSize: 64, writable: lastWritable }, CHAINS), 'chains/s'));
      }
    }
  }
}
for (const transfer of ['read', 'read-slices', 'write', 'write-slices'] as const) {
  for (const [size, label] of [
    [64, '64B'],
    [4096, '4KiB'],
    [65536, '64KiB'],
  ] as const) {
    const name = `${transfer}-${label}`;
    cases.set(name, () => report(name, bytesPerSecond(transfer, size, (quick ? 1 : 4) * 2 ** 30), 'bytes/s'));
  }
}
cases.set('heap', () => heapFlatness(10_000_000));

const selected = process.argv.indexOf('--case');
if (selected >= 0) {
  const name = process.argv[selected + 1] ?? '';
  const run = cases.get(name);
  if (run === undefined) {
    console.error(`bench: unknown case "${name}"; cases: ${[...cases.keys()].join(', ')}`);
    process.exit(2);
  }
  await run();
} else {
  for (const name of cases.keys()) {
    const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1] as string, '--case', name, ...(quick ? ['--quick'] : [])], {
      stdio: 'inherit',
    });
    if (child.status !== 0) {
      console.error(`bench: case ${name} failed (exit ${child.status ?? child.signal})`);
      process.exit(1);
    }
  }
}
