import { LoopbackDevice, MmioDriverTransport, type TransportFactory } from '@virtio-ts/driver';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { MmioTransport, type MmioTransportOptions } from '../src/index.js';

/** Guest RAM used by the tests: 1 MiB at 0, a hole, then 1 MiB at 4 MiB. */
export function testMemory(): GuestMemory {
  return new GuestMemory([
    { guestAddress: 0, buffer: new ArrayBuffer(1 << 20) },
    { guestAddress: 4 << 20, buffer: new ArrayBuffer(1 << 20) },
  ]);
}

/** Where the tests place the register block. */
export const BASE = 0xd000_0000;
/** The interrupt line the tests use. */
export const IRQ = 5;

/** A device behind MMIO, with the guest's transport backend wired to its registers and interrupt line. */
export interface Rig {
  readonly memory: GuestMemory;
  readonly transport: MmioTransport;
  /** The guest side: `@virtio-ts/driver`'s MMIO backend, for register-level steps or a VirtioDriver on top. */
  readonly driver: MmioDriverTransport;
  /** Every level the line was driven to, in order. */
  readonly line: boolean[];
}

/** Puts `device` behind a version 2 MmioTransport and connects the driver backend to its registers and line. */
export function connect(device: VirtioDevice = new LoopbackDevice(), options: Partial<MmioTransportOptions> = {}): Rig {
  const memory = options.memory ?? testMemory();
  const line: boolean[] = [];
  const transport = new MmioTransport({
    device,
    memory,
    baseAddress: BASE,
    irq: {
      number: IRQ,
      set: (level) => {
        line.push(level);
        driver.interruptLine(level);
      },
    },
    ...options,
  });
  // The line only moves once the guest has programmed the device, after `driver` exists.
  const driver = new MmioDriverTransport(transport, memory);
  return { memory, transport, driver, line };
}

/** MMIO for suites that run over several transports, such as the conformance suite. */
export const mmioTransportFactory: TransportFactory = {
  name: 'mmio',
  create: (memory, device) => connect(device, { memory }).driver,
};

/** Lets the guest take pending interrupts: runs every queued microtask. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
