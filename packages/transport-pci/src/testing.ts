import { PciDriverTransport, PciLegacyDriverTransport, type PciDriverOptions, type TransportFactory } from '@virtio-ts/driver';
import type { GuestMemory, VirtioDevice } from '@virtio-ts/virtqueue';
import { PciTransport, type PciTransportOptions } from './pci-transport.js';

/**
 * Transport options for {@link connectPci}: the function's own, less what the
 * wiring supplies (device, memory, interrupt sinks), and whether it has each
 * interrupt mechanism.
 */
export type PciTestOptions = Omit<PciTransportOptions, 'device' | 'memory' | 'msi' | 'intx'> & {
  /** An MSI-X capability whose messages reach the driver. Default true. */
  readonly msi?: boolean;
  /** An INTx line to the driver. Default true. */
  readonly intx?: boolean;
};

/** A PCI function and the guest driver backend bound to it, with every interrupt the platform saw. */
export interface PciConnection<D> {
  /** Guest memory. */
  readonly memory: GuestMemory;
  /** The device's side: the PCI function. */
  readonly fn: PciTransport;
  /** The guest's side: `@virtio-ts/driver`'s backend, having enumerated the function. */
  readonly driver: D;
  /** MSI messages in the order the function sent them. */
  readonly messages: { readonly address: number; readonly data: number }[];
  /** INTx line levels in the order the function drove them. */
  readonly intx: boolean[];
  /** Whether interrupts reach the driver; a test playing a hostile guest turns this off and only watches the wires. */
  readonly routing: { toDriver: boolean };
}

/** How interrupts reach a driver backend: MSI messages and the INTx level, as an interrupt controller delivers them. */
interface InterruptInput {
  deliverMsi(address: number, data: number): void;
  setIntx(level: boolean): void;
}

/**
 * Puts `device` in a {@link PciTransport} and lets the modern driver
 * (`PciDriverTransport`, as Linux's virtio_pci_modern) enumerate it: BARs
 * assigned, decoding and bus mastering on, MSI-X set up when present. The
 * function's MSI messages and INTx line go to the driver as a platform's
 * interrupt controller would deliver them, and register accesses straight
 * through (with {@link PciTransport.pendingCompletion} for the driver to wait
 * on, as a VMM holds the vCPU).
 */
export function connectPci(device: VirtioDevice, memory: GuestMemory, transport: PciTestOptions = {}, driver: PciDriverOptions = {}): PciConnection<PciDriverTransport> {
  return connect(device, memory, transport, (fn) => new PciDriverTransport(memory, fn, driver));
}

/** As {@link connectPci}, with a transitional function and the legacy (0.9.5) driver, as Linux's virtio_pci_legacy. */
export function connectPciLegacy(
  device: VirtioDevice,
  memory: GuestMemory,
  transport: PciTestOptions = {},
  driver: PciDriverOptions = {},
): PciConnection<PciLegacyDriverTransport> {
  return connect(device, memory, { ...transport, transitional: true }, (fn) => new PciLegacyDriverTransport(memory, fn, driver));
}

/** Options for {@link pciTransportFactory}. */
export interface PciTransportFactoryOptions {
  /** Suffix of the transport's name in test titles: `pci (<name>)`. */
  readonly name?: string;
  /** The function's options. */
  readonly transport?: PciTestOptions;
  /** The driver backend's options. */
  readonly driver?: PciDriverOptions;
  /** A transitional function driven by the legacy driver (no VIRTIO_F_VERSION_1: for drivers that accept that). */
  readonly legacy?: boolean;
}

/**
 * virtio-pci as a conformance-suite transport (`describeVirtioConformance`'s
 * `transports`): each device in its own function, connected by
 * {@link connectPci} (or {@link connectPciLegacy}) with `options`.
 */
export function pciTransportFactory(options: PciTransportFactoryOptions = {}): TransportFactory {
  const kind = options.legacy === true ? 'pci-legacy' : 'pci';
  const connectWith = options.legacy === true ? connectPciLegacy : connectPci;
  return {
    name: options.name === undefined ? kind : `${kind} (${options.name})`,
    create: (memory, device) => connectWith(device, memory, options.transport, options.driver).driver,
  };
}

function connect<D extends InterruptInput>(device: VirtioDevice, memory: GuestMemory, transport: PciTestOptions, create: (fn: PciTransport) => D): PciConnection<D> {
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
  const driver = create(fn);
  link.driver = driver;
  return { memory, fn, driver, messages, intx, routing };
}
