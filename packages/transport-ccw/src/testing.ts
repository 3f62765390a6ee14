import { CcwDriverTransport, type TransportFactory } from '@virtio-ts/driver';
import type { GuestMemory, GuestMemoryRegion } from '@virtio-ts/virtqueue';
import { GuestAllocator } from '@virtio-ts/virtqueue/testing';
import { diagnose500 } from './diagnose.js';
import { CcwTransport } from './transport.js';

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
  if (largest === undefined) throw new RangeError('ccwTransportFactory: guest memory needs a writable region of more than 8 KiB below 2 GiB');
  return largest;
}

/**
 * virtio-ccw for suites that take a TransportFactory, such as the driver
 * package's conformance suite: a {@link CcwTransport} on a channel subsystem
 * that delivers its interruptions to the guest driver
 * (`CcwDriverTransport`), with DIAGNOSE 0x500 notifications. The driver's
 * channel programs and indicators take the first page of the largest
 * writable region below 2 GiB, and its rings and buffers the rest.
 */
export function ccwTransportFactory(options: CcwTransportFactoryOptions = {}): TransportFactory {
  const revision = options.maxRevision ?? 2;
  const adapter = options.adapterInterrupts ?? true;
  return {
    name: options.name ?? `ccw (revision ${revision}, ${adapter ? 'adapter' : 'classic'} indicators)`,
    driverWindow: (memory) => {
      const region = driverRegion(memory);
      return { start: region.guestAddress + CHANNEL_AREA, end: region.end };
    },
    create: (memory, device) => {
      const region = driverRegion(memory);
      const link: { driver?: CcwDriverTransport } = {};
      const transport = new CcwTransport({
        device,
        memory,
        subchannelId: SUBCHANNEL_ID,
        maxRevision: revision,
        channelSubsystem: {
          ioInterrupt: () => link.driver?.ioInterrupt(),
          ...(adapter ? { adapterInterrupt: (isc: number) => link.driver?.adapterInterrupt(isc) } : {}),
        },
      });
      transport.setEnabled(true);
      link.driver = new CcwDriverTransport(memory, transport, {
        allocator: new GuestAllocator(region.guestAddress + 0x100, region.guestAddress + CHANNEL_AREA, { seed: 7, maxGap: 32 }),
        subchannelId: SUBCHANNEL_ID,
        hypercall: (registers) => diagnose500(registers, (sid) => (sid === SUBCHANNEL_ID ? transport : undefined)),
      });
      return link.driver;
    },
  };
}
