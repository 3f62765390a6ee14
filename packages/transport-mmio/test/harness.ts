import { LoopbackDevice } from '@virtio-ts/driver';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { MMIO_TEST_BASE, MMIO_TEST_IRQ, connectMmio, type MmioConnection, type MmioTestOptions } from '../src/testing.js';

/** Guest RAM used by the tests: 1 MiB at 0, a hole, then 1 MiB at 4 MiB. */
export function testMemory(): GuestMemory {
  return new GuestMemory([
    { guestAddress: 0, buffer: new ArrayBuffer(1 << 20) },
    { guestAddress: 4 << 20, buffer: new ArrayBuffer(1 << 20) },
  ]);
}

/** Where the tests place the register block. */
export const BASE = MMIO_TEST_BASE;
/** The interrupt line the tests use. */
export const IRQ = MMIO_TEST_IRQ;

/** A device behind MMIO with the driver backend wired to it (see `connectMmio`). */
export type Rig = MmioConnection;

/** The loopback device (or `device`) behind a version 2 MmioTransport in {@link testMemory}, the driver backend wired to it. */
export function connect(device: VirtioDevice = new LoopbackDevice(), options: MmioTestOptions & { readonly memory?: GuestMemory } = {}): Rig {
  const { memory, ...rest } = options;
  return connectMmio(device, memory ?? testMemory(), rest);
}

/** Lets the guest take pending interrupts: runs every queued microtask. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
