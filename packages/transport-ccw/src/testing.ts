import { CcwDriverTransport, type CcwDriverTransportOptions, type TransportFactory } from '@virtio-ts/driver';
import type { GuestMemory, GuestMemoryRegion, VirtioDevice } from '@virtio-ts/virtqueue';
import { GuestAllocator } from '@virtio-ts/virtqueue/testing';
import { diagnose500 } from './diagnose.js';
import { CcwTransport, type CcwTransportOptions } from './transport.js';

/** Options for {@link ccwTransportFactory}. */
export interface CcwTransportFactoryOptions {
  /** The device's (and so the driver's) highest revision: 1, or 2 (the default). */
  readonly maxRevision?: number;
  /** The channel subsystem offers adapter interruptions, so the driver uses two-stage indicators (default true). */
  readonly adapterInterrupts?: boolean;
  /** The name in test titles; defaults to one saying the revision and the kind of indicators. */
  readonly name?: string;
}

/** The subchannel ID word of the one subchannel: subchannel set 0, subchannel 0. */
const SUBCHANNEL_ID = 0x0001_0000;
/** The driver's channel programs, data area and indicators (about 300 bytes) take the first page of its window. */
const CHANNEL_AREA = 0x1000;
/** CCW data addresses are 31 bits. */
const CCW_LIMIT = 2 ** 31;

/** The largest writable region that starts below 2 GiB: the driver's window, whose first page holds its channel I/O. */
function driverRegion(memory: GuestMemory): GuestMemoryRegion {
  const candidates = memory.regions.filter((r) => !r.readonly && r.guestAddress + CHANNEL_AREA <= CCW_LIMIT && r.size > 2 * CHANNEL_AREA);
  const largest = candidates.reduce<GuestMemoryRegion | undefined>((best, r) => (best === undefined || r.size > best.size ? r : best), undefined);
  if (largest === undefined) throw new RangeError('virtio-ccw testing: give guest memory a writable region of more than 8 KiB below 2 GiB');
  return largest;
}

/**
 * The guest memory {@link connectCcw}'s driver leaves to rings and buffers,
 * for `new VirtioDriver(driver, { window })`: the largest writable region below
 * 2 GiB less its first page, which holds the driver's channel programs and
 * indicators (unless `driver.allocator` placed them elsewhere).
 */
export function ccwDriverWindow(memory: GuestMemory): { readonly start: number; readonly end: number } {
  const region = driverRegion(memory);
  return { start: region.guestAddress + CHANNEL_AREA, end: region.end };
}

/** Places the driver's channel I/O in the first page of {@link driverRegion}. */
function channelAllocator(memory: GuestMemory): GuestAllocator {
  const region = driverRegion(memory);
  return new GuestAllocator(region.guestAddress + 0x100, region.guestAddress + CHANNEL_AREA, { seed: 7, maxGap: 32 });
}

/** Options for {@link connectCcw}. */
export interface CcwTestOptions {
  /** The transport's options, less what the wiring supplies. */
  readonly transport?: Omit<CcwTransportOptions, 'device' | 'memory' | 'subchannelId' | 'channelSubsystem'>;
  /**
   * The driver backend's options, less what the wiring supplies. `allocator`
   * defaults to the first page of the largest writable region below 2 GiB;
   * the rest is {@link ccwDriverWindow}.
   */
  readonly driver?: Omit<CcwDriverTransportOptions, 'allocator' | 'subchannelId' | 'hypercall'> & { readonly allocator?: GuestAllocator };
  /** The channel subsystem offers adapter interruptions (default true). */
  readonly adapterInterrupts?: boolean;
  /** The subchannel ID word. Defaults to subchannel set 0, subchannel 0. */
  readonly subchannelId?: number;
}

/** A device on a virtio-ccw subchannel and the guest driver backend bound to it, with every interruption the channel subsystem raised. */
export interface CcwConnection {
  /** Guest memory. */
  readonly memory: GuestMemory;
  /** The device's side: the subchannel. */
  readonly transport: CcwTransport;
  /** The guest's side, for channel-program-level steps or a VirtioDriver on top. */
  readonly driver: CcwDriverTransport;
  /** Interruption parameters of the I/O interruptions, in order. */
  readonly ioInterrupts: number[];
  /** I/O interruption subclasses of the adapter interruptions, in order. */
  readonly adapterInterrupts: number[];
}

/**
 * Puts `device` on an enabled {@link CcwTransport} and lets the guest driver
 * (`CcwDriverTransport`, as Linux's virtio_ccw) take it, as a platform would
 * connect them: the channel subsystem's I/O and adapter interruptions go to
 * the driver, and its DIAGNOSE 0x500 notifications to the transport. The
 * driver's constructor runs its first channel programs (SENSE ID, the
 * revision), so the connection is ready for `reset` and initialisation. A
 * `VirtioDriver` on it takes {@link ccwDriverWindow} as its window.
 */
export function connectCcw(device: VirtioDevice, memory: GuestMemory, options: CcwTestOptions = {}): CcwConnection {
  const subchannelId = options.subchannelId ?? SUBCHANNEL_ID;
  const ioInterrupts: number[] = [];
  const adapterInterrupts: number[] = [];
  // The channel subsystem reaches the driver once it exists (its constructor runs channel programs).
  const link: { driver?: CcwDriverTransport } = {};
  const transport = new CcwTransport({
    ...options.transport,
    device,
    memory,
    subchannelId,
    channelSubsystem: {
      ioInterrupt: (intparm) => {
        ioInterrupts.push(intparm);
        link.driver?.ioInterrupt();
      },
      ...(options.adapterInterrupts === false
        ? {}
        : {
            adapterInterrupt: (isc: number) => {
              adapterInterrupts.push(isc);
              link.driver?.adapterInterrupt(isc);
            },
          }),
    },
  });
  transport.setEnabled(true);
  const driver = new CcwDriverTransport(memory, transport, {
    ...options.driver,
    allocator: options.driver?.allocator ?? channelAllocator(memory),
    subchannelId,
    hypercall: (registers) => diagnose500(registers, (sid) => (sid === subchannelId ? transport : undefined)),
  });
  link.driver = driver;
  return { memory, transport, driver, ioInterrupts, adapterInterrupts };
}

/**
 * virtio-ccw for suites that take a TransportFactory, such as the driver
 * package's conformance suite: each device on its own {@link connectCcw}.
 * The driver's channel programs and indicators take the first page of the
 * largest writable region below 2 GiB, and its rings and buffers the rest
 * ({@link ccwDriverWindow}).
 */
export function ccwTransportFactory(options: CcwTransportFactoryOptions = {}): TransportFactory {
  const revision = options.maxRevision ?? 2;
  const adapter = options.adapterInterrupts ?? true;
  return {
    name: options.name ?? `ccw (revision ${revision}, ${adapter ? 'adapter' : 'classic'} indicators)`,
    driverWindow: ccwDriverWindow,
    create: (memory, device) => connectCcw(device, memory, { transport: { maxRevision: revision }, adapterInterrupts: adapter }).driver,
  };
}
