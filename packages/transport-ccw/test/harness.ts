/**
 * A guest for the CCW tests: guest memory with a low area for channel I/O and
 * a larger RAM region above a hole, a CcwTransport carrying a device, the
 * channel subsystem wiring its interruptions to a CcwDriverTransport, and a
 * raw channel-program writer for the tests that build programs by hand.
 */
import { CcwDriverTransport, LoopbackDevice, type LoopbackDeviceOptions, type TransportFactory } from '@virtio-ts/driver';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { GuestAllocator } from '@virtio-ts/virtqueue/testing';
import { CcwTransport, ConditionCode, diagnose500, type InterruptionResponse } from '../src/index.js';

/** Guest-physical layout: [0, 64 KiB) channel I/O, a hole, then RAM for rings and buffers. */
export const LOW = { start: 0, end: 0x10000 };
export const RAM = { start: 0x100000, end: 0x200000 };
/** Where raw programs put their CCWs and data. */
export const PROGRAM = 0x8000;
export const DATA = 0x9000;
/** A subchannel ID word: subchannel set 0, subchannel 0x0042. */
export const SUBCHANNEL_ID = 0x00010042;

/** Builds the guest memory layout. */
export function guestMemory(): GuestMemory {
  return new GuestMemory([
    { guestAddress: LOW.start, buffer: new ArrayBuffer(LOW.end - LOW.start) },
    { guestAddress: RAM.start, buffer: new ArrayBuffer(RAM.end - RAM.start) },
  ]);
}

/** Options for {@link ccwRig}. */
export interface RigOptions {
  /** The device; defaults to a LoopbackDevice. */
  readonly device?: VirtioDevice;
  readonly loopback?: LoopbackDeviceOptions;
  /** The transport's highest revision. */
  readonly maxRevision?: number;
  /** The channel subsystem offers adapter interruptions (default true). */
  readonly adapterInterrupts?: boolean;
  /** The driver's highest revision to try. */
  readonly driverRevision?: number;
  /** The driver tries adapter indicators first (default true). */
  readonly driverAdapter?: boolean;
}

/** A transport and the interruptions it raised. */
export interface TransportRig {
  readonly memory: GuestMemory;
  readonly device: VirtioDevice;
  readonly transport: CcwTransport;
  /** Interruption parameters of the I/O interruptions raised. */
  readonly ioInterrupts: number[];
  /** ISCs of the adapter interruptions raised. */
  readonly adapterInterrupts: number[];
  /** Messages the transport logged. */
  readonly log: string[];
}

/** A transport on its own, for tests that write channel programs by hand. The subchannel is enabled. */
export function transportRig(options: RigOptions = {}, onIo?: () => void, onAdapter?: (isc: number) => void): TransportRig {
  const memory = guestMemory();
  const device = options.device ?? new LoopbackDevice(options.loopback);
  const ioInterrupts: number[] = [];
  const adapterInterrupts: number[] = [];
  const log: string[] = [];
  const transport = new CcwTransport({
    device,
    memory,
    subchannelId: SUBCHANNEL_ID,
    ...(options.maxRevision === undefined ? {} : { maxRevision: options.maxRevision }),
    log: (message) => log.push(message),
    channelSubsystem: {
      ioInterrupt: (intparm) => {
        ioInterrupts.push(intparm);
        onIo?.();
      },
      ...(options.adapterInterrupts === false
        ? {}
        : {
            adapterInterrupt: (isc: number) => {
              adapterInterrupts.push(isc);
              onAdapter?.(isc);
            },
          }),
    },
  });
  transport.setEnabled(true);
  return { memory, device, transport, ioInterrupts, adapterInterrupts, log };
}

/** A transport with the guest driver on it. */
export interface DriverRig extends TransportRig {
  readonly driver: CcwDriverTransport;
}

/** A transport and a CcwDriverTransport wired through a channel subsystem and DIAGNOSE 0x500. */
export function driverRig(options: RigOptions = {}): DriverRig {
  // The channel subsystem reaches the driver once it exists (its constructor runs channel programs).
  const link: { driver?: CcwDriverTransport } = {};
  const rig = transportRig(
    options,
    () => link.driver?.ioInterrupt(),
    (isc) => link.driver?.adapterInterrupt(isc),
  );
  const driver = new CcwDriverTransport(rig.memory, rig.transport, {
    allocator: new GuestAllocator(0x1000, PROGRAM, { seed: 11, maxGap: 64 }),
    subchannelId: SUBCHANNEL_ID,
    hypercall: (registers) => diagnose500(registers, (sid) => (sid === SUBCHANNEL_ID ? rig.transport : undefined)),
    ...(options.driverRevision === undefined ? {} : { revision: options.driverRevision }),
    ...(options.driverAdapter === undefined ? {} : { adapterInterrupts: options.driverAdapter }),
  });
  link.driver = driver;
  return { ...rig, driver };
}

/**
 * CCW for suites that take a TransportFactory (the conformance suite): a
 * subchannel with adapter interruptions, and the guest driver wired to it. The
 * driver's channel programs and indicators (about 300 bytes) go in the first
 * page of the memory's largest region, which VirtioDriver's default window
 * leaves to the platform.
 */
export function ccwTransportFactory(options: { readonly maxRevision?: number; readonly adapterInterrupts?: boolean } = {}): TransportFactory {
  const revision = options.maxRevision ?? 2;
  return {
    name: `ccw (revision ${revision}, ${options.adapterInterrupts === false ? 'classic' : 'adapter'} indicators)`,
    create: (memory, device) => {
      const largest = memory.regions.reduce((a, b) => (b.size > a.size ? b : a));
      const link: { driver?: CcwDriverTransport } = {};
      const transport = new CcwTransport({
        device,
        memory,
        subchannelId: SUBCHANNEL_ID,
        maxRevision: revision,
        channelSubsystem: {
          ioInterrupt: () => link.driver?.ioInterrupt(),
          ...(options.adapterInterrupts === false ? {} : { adapterInterrupt: (isc: number) => link.driver?.adapterInterrupt(isc) }),
        },
      });
      transport.setEnabled(true);
      link.driver = new CcwDriverTransport(memory, transport, {
        allocator: new GuestAllocator(largest.guestAddress + 0x100, largest.guestAddress + 0x1000, { seed: 7, maxGap: 32 }),
        subchannelId: SUBCHANNEL_ID,
        hypercall: (registers) => diagnose500(registers, (sid) => (sid === SUBCHANNEL_ID ? transport : undefined)),
      });
      return link.driver;
    },
  };
}

/** A format-1 CCW. */
export interface Ccw {
  readonly command: number;
  readonly flags?: number;
  readonly count: number;
  /** Data address; defaults to {@link DATA}. */
  readonly cda?: number;
}

/** Writes `ccws` as a channel program at `at` (big-endian, 8 bytes each). */
export function writeProgram(memory: GuestMemory, ccws: readonly Ccw[], at = PROGRAM): void {
  const bytes = new Uint8Array(8 * ccws.length);
  const view = new DataView(bytes.buffer);
  ccws.forEach((ccw, i) => {
    view.setUint8(8 * i, ccw.command);
    view.setUint8(8 * i + 1, ccw.flags ?? 0);
    view.setUint16(8 * i + 2, ccw.count);
    view.setUint32(8 * i + 4, ccw.cda ?? DATA);
  });
  memory.write(at, bytes);
}

/** Runs a program: START SUBCHANNEL (which must be accepted) and TEST SUBCHANNEL. */
export function run(transport: CcwTransport, ccws: readonly Ccw[], memory: GuestMemory, intparm = 0x1234): InterruptionResponse {
  writeProgram(memory, ccws);
  const cc = transport.startSubchannel(PROGRAM, intparm);
  if (cc !== ConditionCode.STARTED) throw new Error(`START SUBCHANNEL: condition code ${cc}`);
  const status = transport.testSubchannel();
  if (status === undefined) throw new Error('no status pending after the channel program');
  return status;
}

/** Writes big-endian bytes built by `fill` at `at`. */
export function writeBlock(memory: GuestMemory, length: number, fill: (view: DataView) => void, at = DATA): void {
  const bytes = new Uint8Array(length);
  fill(new DataView(bytes.buffer));
  memory.write(at, bytes);
}
