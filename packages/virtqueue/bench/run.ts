/**
 * Device-side virtqueue throughput. The driver side is prepared outside the
 * timed part: each round the driver fills the whole ring, then the device pops
 * every chain, completes it and flushes once; only the device's work is timed.
 * Prints one `BENCH <package> <case> <value> <unit>` line per case.
 */
import { GuestMemory, createVirtqueue, featureBit, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, type Virtqueue } from '@virtio-ts/virtqueue';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing, type GuestBuffer } from '@virtio-ts/virtqueue/testing';

const PKG = '@virtio-ts/virtqueue';
const QUEUE_SIZE = 256;
const quick = process.argv.includes('--quick');
const CHAINS = quick ? 2_000_000 : 10_000_000;

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${PKG} ${name} ${Math.round(value)} ${unit}`);
}

interface Setup {
  queue: Virtqueue;
  refill(): void;
}

function setup(packed: boolean, descriptors: number, indirect: boolean, eventIdx: boolean): Setup {
  const memory = GuestMemory.create(16 << 20);
  const alloc = new GuestAllocator(0x1000, 16 << 20, { seed: 7, maxGap: 64 });
  const features =
    featureBit(VIRTIO_F_VERSION_1) |
    (packed ? featureBit(VIRTIO_F_RING_PACKED) : 0n) |
    (indirect ? featureBit(VIRTIO_F_INDIRECT_DESC) : 0n) |
    (eventIdx ? featureBit(VIRTIO_F_EVENT_IDX) : 0n);
  const config = packed ? placePackedRing(alloc, QUEUE_SIZE) : placeSplitRing(alloc, QUEUE_SIZE);
  const queue = createVirtqueue(memory, config, { index: 0, features, hooks: { interrupt: () => undefined, corrupt: (r) => { throw new Error(r); } } });
  const chainsPerRound = indirect ? QUEUE_SIZE : Math.floor(QUEUE_SIZE / descriptors);
  const chains: { buffers: GuestBuffer[]; table: number | undefined }[] = [];
  for (let i = 0; i < chainsPerRound; i++) {
    const buffers = Array.from({ length: descriptors }, (_, d) => ({ addr: alloc.alloc(64, 8), len: 64, writable: d === descriptors - 1 }));
    chains.push({ buffers, table: indirect ? alloc.alloc(16 * descriptors, 16) : undefined });
  }
  const add = (driver: SplitRingDriver | PackedRingDriver): void => {
    for (const c of chains) driver.add(c.buffers, c.table === undefined ? {} : { indirectTable: c.table });
    driver.publish();
  };
  if (packed) {
    const driver = new PackedRingDriver(memory, config, { eventIdx });
    return { queue, refill: () => { while (driver.takeUsed() !== null); add(driver); } };
  }
  const driver = new SplitRingDriver(memory, config, { eventIdx });
  return { queue, refill: () => { while (driver.takeUsed() !== null); add(driver); } };
}

function chainsPerSecond(s: Setup): number {
  let done = 0;
  let ns = 0n;
  const q = s.queue;
  while (done < CHAINS) {
    s.refill();
    const t0 = process.hrtime.bigint();
    let chain;
    while ((chain = q.pop()) !== null) {
      q.addUsed(chain, 0);
      done++;
    }
    q.flush();
    ns += process.hrtime.bigint() - t0;
  }
  return (done / Number(ns)) * 1e9;
}

for (const packed of [false, true]) {
  for (const descriptors of [1, 4]) {
    for (const indirect of [false, true]) {
      for (const eventIdx of [false, true]) {
        const name = `${packed ? 'packed' : 'split'}-${descriptors}desc${indirect ? '-indirect' : ''}${eventIdx ? '-eventidx' : ''}`;
        report(`${name} chains/s`.replace(' ', '-'), chainsPerSecond(setup(packed, descriptors, indirect, eventIdx)), 'chains/s');
      }
    }
  }
}
