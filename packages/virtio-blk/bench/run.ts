/**
 * virtio-blk on the file backend, driven through @virtio-ts/driver's
 * VirtioDriver, next to plain positional I/O from Node (fs.read / fs.write on
 * the descriptor, through libuv's thread pool) on the same file in the same
 * run: what any Node program gets. The device also serves page-cache hits on
 * the event loop (preadv2 with RWF_NOWAIT), which plain fs.read cannot. 4 KiB random reads and writes and 1 MiB sequential reads
 * and writes, at queue depth 1 and 32.
 *
 * Prints `BENCH @virtio-ts/virtio-blk <case> <value> <unit>` lines: IOPS,
 * MB/s and process CPU time per operation for the device and for plain I/O,
 * and the device/plain ratio.
 * Usage: pnpm bench [-- --quick] [--only <case>] [--side plain|device] [--aio threads|native] [--control]
 * (`--side` runs one side alone, for profiling it: no ratio is printed;
 * `--aio` is the file backend's write mode; `--control` runs plain I/O in the
 * device's place and prints `<case>-control-ratio`, plain against itself: how
 * far the machine's noise alone moves a ratio).
 */
import { read, write } from 'node:fs';
import { open, mkdtemp, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreTransport, VirtioDriver, type DriverQueue } from '@virtio-ts/driver';
import { GuestMemory, featureBit } from '@virtio-ts/virtqueue';
import type { GuestBuffer } from '@virtio-ts/virtqueue/testing';
import { VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from '../src/index.js';
import { FileBackend } from '../src/node/index.js';

const PKG = '@virtio-ts/virtio-blk';
const quick = process.argv.includes('--quick');
const only = process.argv[process.argv.indexOf('--only') + 1];
const side = process.argv.includes('--side') ? process.argv[process.argv.indexOf('--side') + 1] : undefined;
const control = process.argv.includes('--control');
const aio = process.argv.includes('--aio') ? process.argv[process.argv.indexOf('--aio') + 1] : 'threads';
if (aio !== 'threads' && aio !== 'native') throw new Error(`--aio must be threads or native, not ${String(aio)}`);
/** Each case alternates plain and device runs of SECONDS each, ROUNDS times, and reports medians: the machine's noise hits both alike. */
const SECONDS = quick ? 0.2 : 0.25;
const ROUNDS = quick ? 4 : 14;
/** Uncounted rounds first: the JIT compiles each side's path while they run. */
const WARM_UP_ROUNDS = 2;
const IMAGE_BYTES = 256 << 20;
const MiB = 1 << 20;

interface Case {
  readonly name: string;
  readonly write: boolean;
  readonly random: boolean;
  readonly blockBytes: number;
  readonly depth: number;
}

const cases: Case[] = [];
for (const depth of [1, 32]) {
  cases.push({ name: `randread-4k-qd${depth}`, write: false, random: true, blockBytes: 4096, depth });
  cases.push({ name: `randwrite-4k-qd${depth}`, write: true, random: true, blockBytes: 4096, depth });
  cases.push({ name: `seqread-1m-qd${depth}`, write: false, random: false, blockBytes: MiB, depth });
  cases.push({ name: `seqwrite-1m-qd${depth}`, write: true, random: false, blockBytes: MiB, depth });
}

/** Offsets of a case: random block-aligned (xorshift, same sequence for both sides) or sequential, wrapping. */
function offsets(c: Case): () => number {
  const blocks = IMAGE_BYTES / c.blockBytes;
  let state = 0x2545f491;
  let next = 0;
  return () => {
    if (!c.random) return (next++ % blocks) * c.blockBytes;
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return ((state >>> 0) % blocks) * c.blockBytes;
  };
}

/** The median of `values`. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Operations per second, and CPU time (all threads of the process) per operation in microseconds. */
interface Rate {
  readonly perSecond: number;
  readonly cpuMicros: number;
  /** CPU time of the main thread alone per operation, in microseconds: where the device and its driver run. */
  readonly mainCpuMicros: number;
}

/** CPU time of the calling thread in microseconds (clock_gettime(CLOCK_THREAD_CPUTIME_ID) through koffi). */
const threadCpuMicros = await (async (): Promise<() => number> => {
  const koffi = (await import('koffi')).default;
  const clockGettime = koffi.load('libc.so.6').func('int clock_gettime(int clock, _Out_ int64_t *timespec)');
  const CLOCK_THREAD_CPUTIME_ID = 3;
  const timespec = new BigInt64Array(2);
  return () => {
    clockGettime(CLOCK_THREAD_CPUTIME_ID, timespec);
    return Number(timespec[0]) * 1e6 + Number(timespec[1]) / 1e3;
  };
})();

/**
 * Runs `depth` workers until the time is up. `begin(finished, fail)` returns
 * the function that starts one operation of a worker, which calls
 * `finished(worker)` when it is over. Callbacks, not a promise per operation:
 * the harness should cost both sides as little as it can.
 */
function measure(depth: number, begin: (finished: (worker: number) => void, fail: (error: Error) => void) => (worker: number) => void): Promise<Rate> {
  return new Promise((resolve, reject) => {
    const deadline = performance.now() + SECONDS * 1000;
    const began = performance.now();
    const cpu = process.cpuUsage();
    const mainCpu = threadCpuMicros();
    let done = 0;
    let active = depth;
    const start = begin((worker) => {
      done++;
      if (performance.now() < deadline) start(worker);
      else if (--active === 0) {
        const used = process.cpuUsage(cpu);
        resolve({ perSecond: done / ((performance.now() - began) / 1000), cpuMicros: (used.user + used.system) / done, mainCpuMicros: (threadCpuMicros() - mainCpu) / done });
      }
    }, reject);
    for (let worker = 0; worker < depth; worker++) start(worker);
  });
}

/** One worker's request buffers in guest memory, placed once as a guest driver's request pool is. */
interface Slot {
  readonly header: number;
  readonly data: number;
  readonly status: number;
  /** The request's descriptors: header, data, status. */
  readonly chain: readonly GuestBuffer[];
}

/**
 * Plain positional I/O on the file: Node's fastest path, fs.read / fs.write
 * on the descriptor, into and out of the same guest-memory buffers the device
 * uses (where the data goes costs as much as the I/O itself).
 */
function plain(handle: FileHandle, memory: GuestMemory, slots: readonly Slot[], c: Case): Promise<Rate> {
  const buffers = slots.map((s) => memory.slice(s.data, c.blockBytes) as Uint8Array);
  const next = offsets(c);
  const fd = handle.fd;
  return measure(c.depth, (finished, fail) => {
    const callbacks = buffers.map((_, w) => (error: NodeJS.ErrnoException | null) => (error === null ? finished(w) : fail(error)));
    return (w) => {
      const b = buffers[w] as Uint8Array;
      const done = callbacks[w] as (typeof callbacks)[number];
      if (c.write) write(fd, b, 0, b.length, next(), done);
      else read(fd, b, 0, b.length, next(), done);
    };
  });
}

/** Hands each used buffer of a queue to the worker that added it, as a guest driver's interrupt handler does. */
class Dispatcher {
  /** The worker waiting for each chain ID (IDs are below the queue size). */
  readonly owners: Int32Array;
  /** Called with the worker whose request the device used. */
  onUsed: (worker: number) => void = () => undefined;

  constructor(queue: DriverQueue) {
    this.owners = new Int32Array(queue.size);
    void this.run(queue);
  }

  private async run(queue: DriverQueue): Promise<void> {
    for (;;) for (const used of await queue.waitUsed()) this.onUsed(this.owners[used.id] as number);
  }
}

function device(driver: VirtioDriver, dispatcher: Dispatcher, slots: readonly Slot[], c: Case): Promise<Rate> {
  const memory = driver.transport.memory;
  const queue = driver.queue(0);
  const next = offsets(c);
  const type = c.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
  return measure(c.depth, (finished, fail) => {
    dispatcher.onUsed = (w) => {
      if (memory.getU8((slots[w] as Slot).status) === VIRTIO_BLK_S_OK) finished(w);
      else fail(new Error(`${c.name}: request failed`));
    };
    return (w) => {
      const s = slots[w] as Slot;
      const sector = next() / 512;
      memory.setU32(s.header, type);
      memory.setU32(s.header + 4, 0);
      memory.setU32(s.header + 8, sector % 0x100000000);
      memory.setU32(s.header + 12, Math.floor(sector / 0x100000000));
      dispatcher.owners[queue.add(s.chain)] = w;
      queue.kick();
    };
  });
}

function report(name: string, value: number, unit: string, digits = 0): void {
  console.log(`BENCH ${PKG} ${name} ${value.toFixed(digits)} ${unit}`);
}

const dir = await mkdtemp(join(tmpdir(), 'virtio-blk-bench-'));
try {
  const path = join(dir, 'disk.img');
  const setup = await open(path, 'w');
  const chunk = new Uint8Array(MiB);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
  for (let at = 0; at < IMAGE_BYTES; at += MiB) await setup.write(chunk, 0, MiB, at);
  await setup.close();

  const backend = await FileBackend.open(path, { aio });
  const blk = new VirtioBlk({ backend, queueSize: 256 });
  // A Linux-like driver: split rings with EVENT_IDX, the header, data and status in their own descriptors.
  const driver = new VirtioDriver(new CoreTransport(GuestMemory.create(64 * MiB), blk));
  await driver.init({ eventIdx: true, features: featureBit(VIRTIO_BLK_F_FLUSH) | featureBit(VIRTIO_BLK_F_SEG_MAX) });
  const dispatcher = new Dispatcher(driver.queue(0));
  const handle = await open(path, 'r+');
  for (const c of cases.filter((k) => !process.argv.includes('--only') || k.name === only)) {
    // Both sides issue the same offsets into the same page-cache state.
    const memory = driver.transport.memory;
    const slots: Slot[] = Array.from({ length: c.depth }, () => {
      const header = driver.allocate(16, 16);
      const data = driver.allocate(c.blockBytes, 4096);
      const status = driver.allocate(1);
      const chain = [
        { addr: header, len: 16, writable: false },
        { addr: data, len: c.blockBytes, writable: !c.write },
        { addr: status, len: 1, writable: true },
      ];
      return { header, data, status, chain };
    });
    for (const s of slots) memory.fill(s.data, c.blockBytes, 0x3c);
    const bases: Rate[] = [];
    const devs: Rate[] = [];
    for (let round = -WARM_UP_ROUNDS; round < ROUNDS; round++) {
      // Each run starts with no dirty pages: otherwise host writeback, set off by one side's writes, lands on the other's run.
      // Which side goes first alternates, so that neither always runs in the wake of the other's writes.
      const order = round % 2 === 0 ? ['plain', 'device'] : ['device', 'plain'];
      for (const which of order) {
        if (side !== undefined && which !== side) continue;
        await handle.datasync();
        const rate = which === 'plain' || control ? await plain(handle, memory, slots, c) : await device(driver, dispatcher, slots, c);
        if (round >= 0) (which === 'plain' ? bases : devs).push(rate);
      }
    }
    for (const s of slots) for (const addr of [s.header, s.data, s.status]) driver.release(addr);
    const mbs = (iops: number): number => (iops * c.blockBytes) / 1e6;
    if (devs.length > 0 && !control) {
      const dev = median(devs.map((r) => r.perSecond));
      report(c.name, dev, 'IOPS');
      report(c.name, mbs(dev), 'MB/s', 1);
      report(`${c.name}-cpu`, median(devs.map((r) => r.cpuMicros)), 'us/op', 1);
      report(`${c.name}-main-cpu`, median(devs.map((r) => r.mainCpuMicros)), 'us/op', 1);
    }
    if (bases.length > 0) {
      const base = median(bases.map((r) => r.perSecond));
      report(`${c.name}-plain`, base, 'IOPS');
      report(`${c.name}-plain`, mbs(base), 'MB/s', 1);
      report(`${c.name}-plain-cpu`, median(bases.map((r) => r.cpuMicros)), 'us/op', 1);
      report(`${c.name}-plain-main-cpu`, median(bases.map((r) => r.mainCpuMicros)), 'us/op', 1);
    }
    if (side !== undefined) continue;
    report(`${c.name}-${control ? 'control-' : ''}ratio`, median(devs.map((r, i) => r.perSecond / (bases[i] as Rate).perSecond)), 'x', 2);
  }
  await handle.close();
  await backend.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
