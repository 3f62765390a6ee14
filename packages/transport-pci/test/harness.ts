import { PciDriverTransport, PciLegacyDriverTransport, type PciDriverOptions, type TransportFactory } from '@virtio-ts/driver';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { PciTransport, type PciTransportOptions } from '../src/index.js';

/** Transport options a test may set; the harness supplies the device, memory and interrupt wiring. */
export type TestTransportOptions = Omit<PciTransportOptions, 'device' | 'memory' | 'msi' | 'intx'> & { readonly msi?: boolean; readonly intx?: boolean };

/** A PCI function and the guest driver bound to it, with every interrupt the platform saw. */
export interface Wired<D> {
  readonly memory: GuestMemory;
  readonly fn: PciTransport;
  readonly driver: D;
  /** MSI messages in the order the function sent them. */
  readonly messages: { readonly address: number; readonly data: number }[];
  /** INTx line levels in the order the function drove them. */
  readonly intx: boolean[];
  /** Whether interrupts reach the driver (tests that play a hostile guest turn this off and only watch the wires). */
  readonly routing: { toDriver: boolean };
}

/**
 * Builds a PciTransport around `device` and a driver backend enumerating it:
 * the function's MSI messages and INTx line go to the driver, as a platform's
 * interrupt controller would deliver them.
 */
export function wire(device: VirtioDevice, transport: TestTransportOptions = {}, driver: PciDriverOptions = {}): Wired<PciDriverTransport> {
  return build(device, transport, (memory, fn) => new PciDriverTransport(memory, fn, driver));
}

/** As {@link wire}, with the legacy (0.9.5) driver on a transitional function. */
export function wireLegacy(device: VirtioDevice, transport: TestTransportOptions = {}, driver: PciDriverOptions = {}): Wired<PciLegacyDriverTransport> {
  return build(device, { ...transport, transitional: true }, (memory, fn) => new PciLegacyDriverTransport(memory, fn, driver));
}

/** A function alone, with its interrupts recorded: for tests that play the guest register by register. */
export function bare(device: VirtioDevice, transport: TestTransportOptions = {}): Omit<Wired<undefined>, 'driver' | 'routing'> {
  const memory = GuestMemory.create(16 << 20);
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

function build<D extends { deliverMsi(address: number, data: number): void; setIntx(level: boolean): void }>(
  device: VirtioDevice,
  transport: TestTransportOptions,
  create: (memory: GuestMemory, fn: PciTransport) => D,
  memory = GuestMemory.create(16 << 20),
): Wired<D> {
  const messages: { address: number; data: number }[] = [];
  const intx: boolean[] = [];
  // The driver exists only once the function does; interrupts cannot arrive before it enables them.
  const link: { driver?: D } = {};
  const routing = { toDriver: true };
  const { msi, intx: line, ...options } = transport;
  const fn = new PciTransport({
    ...options,
    device,
    memory,
    ...(msi === false
      ? {}
      : {
          msi: {
            signal: (address, data) => {
              messages.push({ address, data });
              if (routing.toDriver) link.driver?.deliverMsi(address, data);
            },
          },
        }),
    ...(line === false
      ? {}
      : {
          intx: {
            set: (level) => {
              intx.push(level);
              if (routing.toDriver) link.driver?.setIntx(level);
            },
          },
        }),
  });
  const driver = create(memory, fn);
  link.driver = driver;
  return { memory, fn, driver, messages, intx, routing };
}

/**
 * PCI for suites that take a TransportFactory (the conformance suite): a
 * function with `transport` options and the modern driver enumerating it with
 * `driver` options, interrupts wired from one to the other.
 */
export function pciTransportFactory(name: string, transport: TestTransportOptions = {}, driver: PciDriverOptions = {}): TransportFactory {
  return {
    name: `pci (${name})`,
    create: (memory, device) => build(device, transport, (m, fn) => new PciDriverTransport(m, fn, driver), memory).driver,
  };
}
