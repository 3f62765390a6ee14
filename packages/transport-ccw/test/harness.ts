/**
 * A guest for the CCW tests: guest memory with a low area for channel I/O and
 * a larger RAM region above a hole, a CcwTransport carrying a device, the
 * channel subsystem wiring its interruptions to a CcwDriverTransport, and a
 * raw channel-program writer for the tests that build programs by hand.
 */
import { LoopbackDevice, type CcwDriverTransport, type InterruptCause, type LoopbackDeviceOptions } from '@virtio-ts/driver';
import { DeviceStatus, GuestMemory, type ConfigField, type VirtioDevice } from '@virtio-ts/virtqueue';
import { GuestAllocator } from '@virtio-ts/virtqueue/testing';
import { expect } from 'vitest';
import { CcwCommand, CcwTransport, ConditionCode, SenseByte0, UnitStatus, type InterruptionResponse } from '../src/index.js';
import { connectCcw } from '../src/testing.js';

/** Guest-physical layout: [0, 64 KiB) channel I/O, a hole, then RAM for rings and buffers. */
export const LOW = { start: 0, end: 0x10000 };
export const RAM = { start: 0x100000, end: 0x200000 };
/** Where raw programs put their CCWs and data. */
export const PROGRAM = 0x8000;
export const DATA = 0x9000;
/** A subchannel ID word: subchannel set 0, subchannel 0x0042. */
export const SUBCHANNEL_ID = 0x00010042;
/** The device status of a normal end: channel end and device end. */
export const END = UnitStatus.CHANNEL_END | UnitStatus.DEVICE_END;

/** Builds the guest memory layout. */
export function guestMemory(): GuestMemory {
  return new GuestMemory([
    { guestAddress: LOW.start, buffer: new ArrayBuffer(LOW.end - LOW.start) },
    { guestAddress: RAM.start, buffer: new ArrayBuffer(RAM.end - RAM.start) },
  ]);
}

/**
 * The loopback device as a transitional device: it declares its configuration
 * fields, two le32 (`served`, `scratch`), so that a big-endian legacy driver
 * sees them big-endian. Its requests are plain bytes, echoed back, so their
 * byte order does not matter.
 */
export class LegacyLoopbackDevice extends LoopbackDevice {
  readonly legacyConfigFields: readonly ConfigField[] = [
    { offset: 0, size: 4 },
    { offset: 4, size: 4 },
  ];
}

/** Lets every promise reaction that is already due run (a reset completing, the channel program resuming). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Options for {@link transportRig} and {@link driverRig}. */
export interface RigOptions {
  /** The device; defaults to a LoopbackDevice. */
  readonly device?: VirtioDevice;
  readonly loopback?: LoopbackDeviceOptions;
  /** The transport's highest revision. */
  readonly maxRevision?: number;
  /** Whether the transport is transitional (defaults to whether the device declares legacyConfigFields). */
  readonly transitional?: boolean;
  /** The channel subsystem offers adapter interruptions (default true). */
  readonly adapterInterrupts?: boolean;
  /** The driver's highest revision to try. */
  readonly driverRevision?: number;
  /** The driver tries adapter indicators first (default true). */
  readonly driverAdapter?: boolean;
  /** The driver is transitional: it goes down to revision 0 (default false). */
  readonly driverLegacy?: boolean;
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

/** The transport's options among `options`. */
function transportOptions(options: RigOptions): { maxRevision?: number; transitional?: boolean } {
  return {
    ...(options.maxRevision === undefined ? {} : { maxRevision: options.maxRevision }),
    ...(options.transitional === undefined ? {} : { transitional: options.transitional }),
  };
}

/** A transport on its own, for tests that write channel programs by hand. The subchannel is enabled. */
export function transportRig(options: RigOptions = {}): TransportRig {
  const memory = guestMemory();
  const device = options.device ?? new LoopbackDevice(options.loopback);
  const ioInterrupts: number[] = [];
  const adapterInterrupts: number[] = [];
  const log: string[] = [];
  const transport = new CcwTransport({
    device,
    memory,
    subchannelId: SUBCHANNEL_ID,
    ...transportOptions(options),
    log: (message) => log.push(message),
    channelSubsystem: {
      ioInterrupt: (intparm) => void ioInterrupts.push(intparm),
      ...(options.adapterInterrupts === false ? {} : { adapterInterrupt: (isc: number) => void adapterInterrupts.push(isc) }),
    },
  });
  transport.setEnabled(true);
  return { memory, device, transport, ioInterrupts, adapterInterrupts, log };
}

/** A transport with the guest driver on it. */
export interface DriverRig extends TransportRig {
  readonly driver: CcwDriverTransport;
}

/** A transport and a CcwDriverTransport wired through a channel subsystem and DIAGNOSE 0x500 (see `connectCcw`), in {@link guestMemory}. */
export function driverRig(options: RigOptions = {}): DriverRig {
  const device = options.device ?? new LoopbackDevice(options.loopback);
  const log: string[] = [];
  const connection = connectCcw(device, guestMemory(), {
    subchannelId: SUBCHANNEL_ID,
    transport: { ...transportOptions(options), log: (message) => log.push(message) },
    ...(options.adapterInterrupts === undefined ? {} : { adapterInterrupts: options.adapterInterrupts }),
    driver: {
      allocator: new GuestAllocator(0x1000, PROGRAM, { seed: 11, maxGap: 64 }),
      ...(options.driverRevision === undefined ? {} : { revision: options.driverRevision }),
      ...(options.driverAdapter === undefined ? {} : { adapterInterrupts: options.driverAdapter }),
      ...(options.driverLegacy === undefined ? {} : { legacy: options.driverLegacy }),
    },
  });
  return { ...connection, device, log };
}

/** A driver rig whose driver records every interrupt cause. */
export interface AcknowledgedRig extends DriverRig {
  /** Every interrupt the driver took, in order. */
  readonly causes: InterruptCause[];
}

/** {@link driverRig}, with the driver through spec 3.1.1 steps 1 to 3: reset, ACKNOWLEDGE, DRIVER. */
export function acknowledgedRig(options: RigOptions = {}): AcknowledgedRig {
  const rig = driverRig(options);
  const causes: InterruptCause[] = [];
  rig.driver.onInterrupt((cause) => causes.push(cause));
  rig.driver.reset();
  rig.driver.setStatus(DeviceStatus.ACKNOWLEDGE);
  rig.driver.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
  return { ...rig, causes };
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

/** The status is a unit check with command reject: the device refused the command. */
export function rejected(status: InterruptionResponse): boolean {
  return (status.deviceStatus & UnitStatus.UNIT_CHECK) !== 0 && status.sense?.[0] === SenseByte0.COMMAND_REJECT;
}

/** Runs one CCW with its big-endian payload, built by `fill`, at DATA. */
export function command(rig: TransportRig, code: number, length: number, fill: (view: DataView) => void = () => undefined, flags = 0): InterruptionResponse {
  writeBlock(rig.memory, length, fill);
  return run(rig.transport, [{ command: code, count: length, flags }], rig.memory);
}

/** SET_VIRTIO_REV. */
export const setRevision = (rig: TransportRig, revision: number, length = 0) =>
  command(rig, CcwCommand.SET_VIRTIO_REV, 4, (v) => {
    v.setUint16(0, revision);
    v.setUint16(2, length);
  });
/** WRITE_STATUS. */
export const writeStatus = (rig: TransportRig, status: number) => command(rig, CcwCommand.WRITE_STATUS, 1, (v) => v.setUint8(0, status));
/** WRITE_FEAT of feature word `index`. */
export const writeFeatures = (rig: TransportRig, index: number, features: number) =>
  command(rig, CcwCommand.WRITE_FEAT, 5, (v) => {
    v.setUint32(0, features, true);
    v.setUint8(4, index);
  });
/** SET_VQ with struct vq_info_block (revision 1 and later). */
export const setQueue = (rig: TransportRig, index: number, config: { size: number; descAddr: number; driverAddr: number; deviceAddr: number }) =>
  command(rig, CcwCommand.SET_VQ, 32, (v) => {
    v.setBigUint64(0, BigInt(config.descAddr));
    v.setUint32(8, 0xdeadbeef /* res0: ignored (spec 4.3.2.2.1) */);
    v.setUint16(12, index);
    v.setUint16(14, config.size);
    v.setBigUint64(16, BigInt(config.driverAddr));
    v.setBigUint64(24, BigInt(config.deviceAddr));
  });

/** READ_FEAT of feature word `index`; the command must succeed. */
export function readFeatures(rig: TransportRig, index: number): number {
  expect(command(rig, CcwCommand.READ_FEAT, 5, (v) => v.setUint8(4, index)).deviceStatus).toBe(END);
  return rig.memory.getU32(DATA);
}
