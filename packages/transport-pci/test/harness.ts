import type { PciDriverOptions, PciDriverTransport, PciLegacyDriverTransport } from '@virtio-ts/driver';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { PciTransport } from '../src/index.js';
import { connectPci, connectPciLegacy, type PciConnection, type PciTestOptions } from '../src/testing.js';

/** Guest memory of every test function. */
const MEMORY_SIZE = 16 << 20;

/** A PCI function and the guest driver bound to it (see `connectPci`). */
export type Wired<D> = PciConnection<D>;

/** The modern driver enumerating a function around `device`, in fresh memory (see `connectPci`). */
export function wire(device: VirtioDevice, transport: PciTestOptions = {}, driver: PciDriverOptions = {}): Wired<PciDriverTransport> {
  return connectPci(device, GuestMemory.create(MEMORY_SIZE), transport, driver);
}

/** As {@link wire}, with the legacy (0.9.5) driver on a transitional function. */
export function wireLegacy(device: VirtioDevice, transport: PciTestOptions = {}, driver: PciDriverOptions = {}): Wired<PciLegacyDriverTransport> {
  return connectPciLegacy(device, GuestMemory.create(MEMORY_SIZE), transport, driver);
}

/** A function alone, with its interrupts recorded: for tests that play the guest register by register. */
export function bare(device: VirtioDevice, transport: PciTestOptions = {}): Omit<Wired<undefined>, 'driver' | 'routing'> {
  const memory = GuestMemory.create(MEMORY_SIZE);
  const messages: { address: number; data: number }[] = [];
  const intx: boolean[] = [];
  const { msi, intx: line, ...options } = transport;
  const fn = new PciTransport({
    ...options,
    device,
    memory,
    ...(msi === false ? {} : { msi: { signal: (address, data) => void messages.push({ address, data }) } }),
    ...(line === false ? {} : { intx: { set: (level) => void intx.push(level) } }),
  });
  return { memory, fn, messages, intx };
}
