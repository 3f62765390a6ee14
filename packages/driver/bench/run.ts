/**
 * Request round trips through VirtioDriver, CoreTransport and LoopbackDevice:
 * what a device test pays per request for the guest side. Prints
 * `BENCH @virtio-ts/driver <case> <value> <unit>` lines.
 */
import { GuestMemory } from '@virtio-ts/virtqueue';
import { LoopbackDevice, VirtioDriver, coreTransportFactory, type InitOptions } from '../src/index.js';

const PAYLOAD = new Uint8Array(64).fill(0x5a);
const WARMUP = 2_000;
const REQUESTS = 50_000;

async function roundTrips(options: InitOptions): Promise<number> {
  const driver = new VirtioDriver(coreTransportFactory.create(GuestMemory.create(4 << 20), new LoopbackDevice()));
  await driver.init(options);
  const queue = driver.queue(0);
  for (let i = 0; i < WARMUP; i++) await queue.request([PAYLOAD], [PAYLOAD.length]);
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) await queue.request([PAYLOAD], [PAYLOAD.length]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await driver.reset();
  return REQUESTS / seconds;
}

const cases: [string, InitOptions][] = [
  ['request-split', {}],
  ['request-split-indirect-event-idx', { indirect: true, eventIdx: true }],
  ['request-packed', { packed: true }],
  ['request-packed-indirect-event-idx', { packed: true, indirect: true, eventIdx: true }],
];

for (const [name, options] of cases) {
  const rate = await roundTrips(options);
  console.log(`BENCH @virtio-ts/driver ${name} ${Math.round(rate)} requests/s`);
}
