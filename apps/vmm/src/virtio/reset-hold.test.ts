import { MmioRegister } from '@virtio-ts/transport-mmio';
import { DeviceId, VIRTIO_F_VERSION_1, featureBit, type ActivationContext, type VirtioDevice } from '@virtio-ts/virtqueue';
import { afterEach, describe, expect, it } from 'vitest';
import type { Machine } from '../machine.js';
import { ACPI_SLEEP_CONTROL_PORT, COM1_PORT } from '../platform/layout.js';
import { GuestProgram } from '../testing/guest-program.js';
import { kvmUnavailableReason } from '../testing/kvm-available.js';
import { startScriptGuest } from '../testing/run-script-guest.js';
import { GUEST } from '../testing/script-guest.js';
import { mmioGuestTransport, offerChain, type SplitQueueLayout } from '../testing/virtio-guest.js';
import { attachMmio } from './attach.js';

const noKvm = kvmUnavailableReason();
if (noKvm !== undefined) console.warn(`SKIP: virtio-mmio reset hold tests need KVM: ${noKvm}`);

const running: Machine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((m) => m.stop()));
});

const QUEUE: SplitQueueLayout = { size: 8, desc: GUEST.free, avail: GUEST.free + 0x1000, used: GUEST.free + 0x2000 };
const BUFFER = GUEST.free + 0x3000;
const UART_VECTOR = 0x24;
/** How long the entropy source takes to answer a request that a reset interrupted. */
const SOURCE_LATENCY_MS = 150;

/**
 * virtio-rng (spec 5.4) whose entropy source answers late: a request taken
 * from the queue is in flight until the source answers, and a reset waits for
 * it (its reset() returns a promise), so status stays non-zero meanwhile (spec 2.4).
 */
class SlowEntropy implements VirtioDevice {
  readonly deviceType = DeviceId.ENTROPY;
  readonly deviceFeatures = featureBit(VIRTIO_F_VERSION_1);
  readonly queueMaxSizes = [8];
  readonly configSize = 0;
  private context: ActivationContext | undefined;
  private inFlight: Promise<void> | undefined;
  constructor(private readonly onRequest: () => void) {}
  readConfig(): void {}
  writeConfig(): void {}
  activate(context: ActivationContext): void {
    this.context = context;
  }
  notify(index: number): void {
    const chain = this.context?.queues.get(index)?.pop();
    if (chain === undefined || chain === null) return;
    this.inFlight = new Promise((resolve) => setTimeout(resolve, SOURCE_LATENCY_MS));
    this.onRequest();
  }
  reset(): Promise<void> | undefined {
    this.context = undefined;
    const inFlight = this.inFlight;
    this.inFlight = undefined;
    return inFlight;
  }
}

describe.skipIf(noKvm !== undefined)('virtio-mmio reset with I/O in flight', () => {
  it('holds the vCPU in its Status=0 write until the reset completed, so the next Status read is 0 (spec 2.4)', async () => {
    const program = new GuestProgram();
    let machineRef: Machine | undefined;
    const device = new SlowEntropy(() => machineRef?.consoleInput(Uint8Array.of(0x41)));
    const { machine, console } = startScriptGuest((m) => {
      machineRef = m;
      const attached = attachMmio(m, device, 'rng0');
      const { baseAddress, interrupt } = attached.transport.description;
      const t = mmioGuestTransport(baseAddress, interrupt, 0x30);
      program.enableApic().routeIoapicPin(4, UART_VECTOR, false).out(1, COM1_PORT + 1, 0x01);
      t.initialise(program, DeviceId.ENTROPY, 1);
      t.setupQueue(program, 0, QUEUE);
      t.driverOk(program);
      offerChain(program, QUEUE, 0, 0, [{ address: BUFFER, length: 64, writable: true }]);
      t.kick(program, 0);
      // The device took the request: the host types a key, whose interrupt tells the guest so.
      program.waitIrq(UART_VECTOR, (p) => p.in(1, COM1_PORT, 0x41));
      program.write(4, baseAddress + MmioRegister.Status, 0).read(4, baseAddress + MmioRegister.Status, 0);
      program.print('done').powerOff(ACPI_SLEEP_CONTROL_PORT);
      return program.script;
    });
    running.push(machine);
    expect(await machine.outcome).toEqual({ kind: 'poweroff' });
    expect(console.lines).toEqual(program.expected);
  });
});
