/**
 * The cost of the virtio-mmio transport as a VMM sees it: one register read,
 * one register write, one configuration read, and one QueueNotify into a
 * device (with an empty ring, and carrying one request through the loopback
 * device including the interrupt acknowledgement). Prints one
 * `BENCH <package> <case> <value> <unit>` line per case.
 */
import { LoopbackDevice, MmioDriverTransport, VirtioDriver } from '@virtio-ts/driver';
import { GuestMemory } from '@virtio-ts/virtqueue';
import { MmioRegister, MmioTransport } from '../src/index.js';

const PKG = '@virtio-ts/transport-mmio';
const quick = process.argv.includes('--quick');
const OPS = quick ? 2_000_000 : 20_000_000;
const REQUESTS = quick ? 200_000 : 2_000_000;

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${PKG} ${name} ${value.toFixed(1)} ${unit}`);
}

/**
 * Nanoseconds per call of `op`: the best of three rounds of `count` calls after
 * a warm-up, so that other work on a shared machine inflates the figure less.
 */
function nsPerOp(count: number, op: (i: number) => number): number {
  let sink = 0;
  for (let i = 0; i < count / 10; i++) sink += op(i);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) sink += op(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / count);
  }
  if (sink === -1) console.log('unreachable');
  return best;
}

const memory = GuestMemory.create(4 << 20);
const transport = new MmioTransport({ device: new LoopbackDevice(), memory, baseAddress: 0xd000_0000, irq: { number: 5, set: () => undefined } });
// The line is not wired to the guest: the timed loops acknowledge interrupts themselves.
const guest = new VirtioDriver(new MmioDriverTransport(transport, memory));
await guest.init({ queueSize: 256 });
const ring = guest.queue(0).ring;

report('register-read', nsPerOp(OPS, () => transport.read(MmioRegister.Status, 4)), 'ns/op');
report('register-write', nsPerOp(OPS, (i) => (transport.write(MmioRegister.QueueSel, 4, i & 1), 0)), 'ns/op');
report('config-read-32', nsPerOp(OPS, () => transport.read(MmioRegister.Config + 4, 4)), 'ns/op');
report('queue-notify-empty', nsPerOp(OPS, () => (transport.write(MmioRegister.QueueNotify, 4, 0), 0)), 'ns/op');

const request = [
  { addr: guest.allocate(64, 8), len: 64, writable: false },
  { addr: guest.allocate(64, 8), len: 64, writable: true },
];
report(
  'queue-notify-one-request',
  nsPerOp(REQUESTS, () => {
    ring.add(request);
    ring.publish();
    transport.write(MmioRegister.QueueNotify, 4, 0);
    transport.write(MmioRegister.InterruptACK, 4, transport.read(MmioRegister.InterruptStatus, 4));
    return ring.takeUsed()?.len ?? 0;
  }),
  'ns/op',
);
