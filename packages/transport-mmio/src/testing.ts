import { MmioDriverTransport, type TransportFactory } from '@virtio-ts/driver';
import type { GuestMemory, VirtioDevice } from '@virtio-ts/virtqueue';
import { MmioTransport, type MmioTransportOptions } from './transport.js';

/** Where {@link connectMmio} places the register block unless told otherwise. */
export const MMIO_TEST_BASE = 0xd000_0000;
/** The interrupt line number {@link connectMmio} gives the device unless told otherwise. */
export const MMIO_TEST_IRQ = 5;

/** Transport options for {@link connectMmio}: the transport's own, less what the wiring supplies (device, memory, line). */
export type MmioTestOptions = Partial<Omit<MmioTransportOptions, 'device' | 'memory' | 'irq'>> & {
  /** The interrupt line's number. Defaults to {@link MMIO_TEST_IRQ}. */
  readonly irqNumber?: number;
};

/** A device behind MMIO with `@virtio-ts/driver`'s MMIO backend bound to its registers and interrupt line. */
export interface MmioConnection {
  /** Guest memory. */
  readonly memory: GuestMemory;
  /** The device's side: the register block. */
  readonly transport: MmioTransport;
  /** The guest's side, for register-level steps or a VirtioDriver on top. */
  readonly driver: MmioDriverTransport;
  /** Every level the interrupt line was driven to, in order. */
  readonly line: boolean[];
}

/**
 * Puts `device` behind an {@link MmioTransport} (version 2 unless `options`
 * say otherwise) and connects the driver backend to it as a platform would:
 * register accesses straight through, the level-triggered line to the
 * driver's interrupt input, and resets the VMM would hold the vCPU for
 * ({@link MmioTransport.pendingCompletion}) waited for by the driver.
 */
export function connectMmio(device: VirtioDevice, memory: GuestMemory, options: MmioTestOptions = {}): MmioConnection {
  const { irqNumber, ...transportOptions } = options;
  const line: boolean[] = [];
  // The line only moves once the guest has programmed the device, after `driver` exists.
  const link: { driver?: MmioDriverTransport } = {};
  const transport = new MmioTransport({
    baseAddress: MMIO_TEST_BASE,
    ...transportOptions,
    device,
    memory,
    irq: {
      number: irqNumber ?? MMIO_TEST_IRQ,
      set: (level) => {
        line.push(level);
        link.driver?.interruptLine(level);
      },
    },
  });
  const driver = new MmioDriverTransport(transport, memory);
  link.driver = driver;
  return { memory, transport, driver, line };
}

/**
 * virtio-mmio as a conformance-suite transport (`describeVirtioConformance`'s
 * `transports`): each device behind its own {@link connectMmio} with `options`.
 */
export function mmioTransportFactory(options: MmioTestOptions & { readonly name?: string } = {}): TransportFactory {
  const { name, ...connectOptions } = options;
  return {
    name: name ?? 'mmio',
    create: (memory, device) => connectMmio(device, memory, connectOptions).driver,
  };
}
