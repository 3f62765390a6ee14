/**
 * Request round trips through VirtioDriver, CoreTransport and LoopbackDevice:
 * what a device test pays per request for the guest side. Each case warms up
 * (so that the JIT has compiled the request path), then times several runs
 * and reports the median, which one slow run on a busy machine does not move.
 * Prints `BENCH @virtio-ts/driver <case> <value> <unit>` lines, and the spread
 * of the runs on a `#` line after each.
 */
import { GuestMemory } from '@virtio-ts/virtqueue';
import { LoopbackDevice, VirtioDriver, coreTransportFactory, type InitOptions } from '../src/index.js';

const PAYLOAD = new Uint8Array(64).fill(0x5a);
const WARMUP = 5_000;
const REQUESTS = 20_000;
const RUNS = 7;

/** Requests per second of each timed run, after the warm-up. */
async function roundTrips(options: InitOptions): Promise<number[]> {
  const driver = new VirtioDriver(coreTransportFactory.create(GuestMemory.create(4 << 20), new LoopbackDevice()));
  await driver.init(options);
  const queue = driver.queue(0);
  for (let i = 0; i < WARMUP; i++) await queue.request([PAYLOAD], [PAYLOAD.length]);
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < REQUESTS; i++) await queue.request([PAYLOAD], [PAYLOAD.length]);
    rates.push(REQUESTS / (Number(process.hrtime.bigint() - start) / 1e9));
  }
  await driver.reset();
  return rates;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const cases: [string, InitOptions][] = [
  ['request-split', {}],
  ['request-split-indirect-event-idx', { indirect: true, eventIdx: true }],
  ['request-packed', { packed: true }],
  ['request-packed-indirect-event-idx', { packed: true, indirect: true, eventIdx: true }],
];

for (const [name, options] of cases) {
  const rates = await roundTrips(options);
  console.log(`BENCH @virtio-ts/driver ${name} ${Math.round(median(rates))} requests/s`);
  console.log(`# ${name}: median of ${RUNS} runs of ${REQUESTS} requests after ${WARMUP} warm-up; runs ${Math.round(Math.min(...rates))} - ${Math.round(Math.max(...rates))} requests/s`);
}
