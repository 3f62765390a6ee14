/**
 * Property: whatever channel programs, notifications, subchannel operations
 * and device events a guest produces, the transport never throws and never
 * leaves the device in a state the spec forbids: a status outside the
 * initialisation sequence (spec 3.1.1, legacy 3.1.2), features beyond those
 * offered after FEATURES_OK (spec 2.2.1), an enabled queue the device could
 * not run, an unsupported revision, a channel status a driver could not
 * decode, or a channel program that never completes. The device is modern,
 * transitional (revision 0 too), or one whose reset waits for in-flight I/O.
 */
import { SlowResetDevice } from '@virtio-ts/driver/conformance';
import { LoopbackDevice } from '@virtio-ts/driver';
import {
  DeviceStatus,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
  queueConfigProblem,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CcwCommand,
  CcwFlag,
  ConditionCode,
  SenseByte0,
  SubchannelStatus,
  UnitStatus,
  diagnose500,
  type InterruptionResponse,
} from '../src/index.js';
import { DATA, LegacyLoopbackDevice, PROGRAM, RAM, SUBCHANNEL_ID, settle, transportRig, writeProgram, type TransportRig } from './harness.js';

const END = UnitStatus.CHANNEL_END | UnitStatus.DEVICE_END;
const STATUS_BITS = Object.values(DeviceStatus).reduce((a, b) => a | b, 0);
const FEATURES = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_NOTIFICATION_DATA);

/** Addresses a guest might use: good ones in both regions, the hole, the edges, above 31 bits. */
const address = fc.oneof(
  fc.constantFrom(DATA, DATA + 1, 0x6000, 0x6008, 0xfff8, 0x10000, 0x20000, RAM.start, RAM.end - 8, 0x7ffffff8, 0x80000000 + DATA),
  fc.integer({ min: 0, max: 0xffffffff }),
);

/** A payload the commands understand, built right or built wrong. */
const payload = fc.oneof(
  fc.record({ kind: fc.constant('revision' as const), revision: fc.constantFrom(1, 2, 2, 0, 3), length: fc.constantFrom(0, 0, 0, 1, 4) }),
  fc.record({ kind: fc.constant('status' as const), status: fc.oneof(fc.constantFrom(1, 3, 11, 15, 0x80, 0x40, 0), fc.integer({ min: 0, max: 255 })) }),
  fc.record({
    kind: fc.constant('features' as const),
    index: fc.integer({ min: 0, max: 5 }),
    value: fc.oneof(fc.constant(Number(FEATURES & 0xffffffffn)), fc.constant(Number(FEATURES >> 32n)), fc.integer({ min: 0, max: 0xffffffff })),
  }),
  fc.record({
    kind: fc.constant('queue' as const),
    index: fc.constantFrom(0, 0, 1, 0xffff),
    packed: fc.boolean(),
    size: fc.constantFrom(0, 1, 64, 100, 256, 257),
    garble: fc.option(fc.tuple(fc.integer({ min: 0, max: 2 }), address)),
    seed: fc.integer({ min: 1, max: 1000 }),
  }),
  fc.record({
    kind: fc.constant('legacyQueue' as const),
    index: fc.constantFrom(0, 0, 1, 0xffff),
    size: fc.constantFrom(0, 1, 64, 100, 256, 257),
    align: fc.oneof(fc.constantFrom(4096, 4096, 64, 4, 0, 3, 0x80000000), fc.integer({ min: 0, max: 0xffffffff })),
    queue: fc.oneof(fc.constantFrom(RAM.start, RAM.start + 0x1000, 0), address),
  }),
  fc.record({ kind: fc.constant('indicator' as const), address: fc.oneof(fc.constantFrom(0, 0x6000, 0x6008), address) }),
  fc.record({
    kind: fc.constant('adapter' as const),
    summary: fc.oneof(fc.constant(0x6100), address),
    area: fc.oneof(fc.constantFrom(0, 0x6200), address),
    bit: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constant(2 ** 40)),
    isc: fc.integer({ min: 0, max: 9 }),
  }),
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ minLength: 0, maxLength: 48 }) }),
);
type Payload = typeof payload extends fc.Arbitrary<infer T> ? T : never;

const commandCode = fc.oneof(fc.constantFrom(...Object.values(CcwCommand)), fc.integer({ min: 0, max: 255 }));
const flags = fc.oneof(fc.constantFrom(0, 0, CcwFlag.SLI, CcwFlag.CC, CcwFlag.CC | CcwFlag.SLI, CcwFlag.SKIP | CcwFlag.SLI, CcwFlag.PCI), fc.integer({ min: 0, max: 255 }));
const count = fc.oneof(fc.constantFrom(0, 1, 2, 4, 5, 8, 25, 32, 33), fc.integer({ min: 0, max: 0xffff }));
const ccw = fc.record({ command: commandCode, flags, count, cda: fc.oneof(fc.constant(DATA), address) });

/** `usual` four times in five, else anything `other` generates. */
function mostly<T, U>(usual: T, other: fc.Arbitrary<U>): fc.Arbitrary<T | U> {
  return fc.oneof({ weight: 4, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: other });
}

/** The commands that take each payload, with their exact counts: most programs are nearly right, so the device gets far. */
const MATCHING: Record<Payload['kind'], readonly (readonly [number, number])[]> = {
  revision: [[CcwCommand.SET_VIRTIO_REV, 4]],
  status: [[CcwCommand.WRITE_STATUS, 1], [CcwCommand.READ_STATUS, 1]],
  features: [[CcwCommand.WRITE_FEAT, 5], [CcwCommand.READ_FEAT, 5]],
  queue: [[CcwCommand.SET_VQ, 32], [CcwCommand.READ_VQ_CONF, 4]],
  legacyQueue: [[CcwCommand.SET_VQ, 16]],
  indicator: [[CcwCommand.SET_IND, 8], [CcwCommand.SET_CONF_IND, 8]],
  adapter: [[CcwCommand.SET_IND_ADAPTER, 25]],
  bytes: [[CcwCommand.READ_CONF, 8], [CcwCommand.WRITE_CONF, 8], [CcwCommand.VDEV_RESET, 0], [CcwCommand.SENSE_ID, 256], [CcwCommand.BASIC_SENSE, 32]],
};
const matched = fc
  .tuple(payload, fc.nat(), mostly(0, flags), mostly(undefined, count), fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, fc.array(ccw, { maxLength: 2 })))
  .map(([p, pick, f, c, rest]) => {
    const choices = MATCHING[p.kind];
    const [command, exact] = choices[pick % choices.length] as readonly [number, number];
    const first = { command, flags: f, count: c ?? exact, cda: DATA };
    return { kind: 'program' as const, at: PROGRAM, payload: p, ccws: rest.length === 0 ? [first] : [{ ...first, flags: first.flags | CcwFlag.CC }, ...rest] };
  });

const op = fc.oneof(
  { weight: 8, arbitrary: matched },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('program' as const), ccws: fc.array(ccw, { minLength: 1, maxLength: 4 }), payload, at: fc.oneof(fc.constant(PROGRAM), address) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'tsch' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('enable' as const), enabled: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('notify' as const), data: fc.integer({ min: 0, max: 0xffffffff }), viaDiagnose: fc.boolean(), high: fc.bigInt({ min: 0n, max: 0xffffffffn }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'configChanged' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('scratch' as const), value: fc.integer({ min: 0, max: 0xffffffff }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'finishReset' as const }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function writePayload(rig: TransportRig, p: Payload): void {
  const bytes = new Uint8Array(48);
  const v = new DataView(bytes.buffer);
  switch (p.kind) {
    case 'revision':
      v.setUint16(0, p.revision);
      v.setUint16(2, p.length);
      break;
    case 'status':
      v.setUint8(0, p.status);
      break;
    case 'features':
      v.setUint32(0, p.value, true);
      v.setUint8(4, p.index);
      break;
    case 'queue': {
      const alloc = new GuestAllocator(RAM.start, RAM.end, { seed: p.seed });
      const size = Math.max(p.size, 1);
      const config = p.packed ? placePackedRing(alloc, size) : placeSplitRing(alloc, size);
      const addresses = [config.descAddr, config.driverAddr, config.deviceAddr];
      if (p.garble !== null) addresses[p.garble[0]] = p.garble[1];
      v.setBigUint64(0, BigInt(addresses[0] ?? 0));
      v.setUint16(12, p.index);
      v.setUint16(14, p.size);
      v.setBigUint64(16, BigInt(addresses[1] ?? 0));
      v.setBigUint64(24, BigInt(addresses[2] ?? 0));
      break;
    }
    case 'legacyQueue':
      v.setBigUint64(0, BigInt(p.queue));
      v.setUint32(8, p.align);
      v.setUint16(12, p.index);
      v.setUint16(14, p.size);
      break;
    case 'indicator':
      v.setBigUint64(0, BigInt(p.address));
      break;
    case 'adapter':
      v.setBigUint64(0, BigInt(p.summary));
      v.setBigUint64(8, BigInt(p.area));
      v.setBigUint64(16, BigInt(p.bit));
      v.setUint8(24, p.isc);
      break;
    case 'bytes':
      bytes.set(p.bytes);
      break;
  }
  rig.memory.write(DATA, bytes);
}

/** What is wrong with a channel status: a driver decodes a normal end, a unit check with command reject, either with incorrect length, or a program check. */
function responseProblems(status: InterruptionResponse | undefined, intparm: number): string[] {
  if (status === undefined) return ['no status pending after START SUBCHANNEL returned condition code 0'];
  const problems: string[] = [];
  if (status.intparm !== intparm) problems.push(`intparm ${status.intparm}, not ${intparm}`);
  if (status.residualCount < 0 || status.residualCount > 0xffff) problems.push(`residual count ${status.residualCount}`);
  const cstat = status.subchannelStatus & ~SubchannelStatus.PROGRAM_CONTROLLED_INTERRUPTION;
  if (status.deviceStatus === 0) {
    if (cstat !== SubchannelStatus.PROGRAM_CHECK) problems.push(`no device status and subchannel status 0x${cstat.toString(16)}`);
  } else if (status.deviceStatus === (END | UnitStatus.UNIT_CHECK)) {
    if (cstat !== 0 && cstat !== SubchannelStatus.INCORRECT_LENGTH) problems.push(`unit check with subchannel status 0x${cstat.toString(16)}`);
    if (status.sense?.[0] !== SenseByte0.COMMAND_REJECT) problems.push('unit check without command reject sense');
  } else if (status.deviceStatus !== END || (cstat !== 0 && cstat !== SubchannelStatus.INCORRECT_LENGTH)) {
    problems.push(`device status 0x${status.deviceStatus.toString(16)}, subchannel status 0x${cstat.toString(16)}`);
  }
  return problems;
}

/** What is wrong with the device's state, as the spec sees it. */
function deviceProblems(rig: TransportRig): string[] {
  const { core, revision } = rig.transport;
  const status = core.status;
  const has = (bit: number) => (status & bit) !== 0;
  const problems: string[] = [];
  if ((status & ~STATUS_BITS) !== 0) problems.push(`status 0x${status.toString(16)} has undefined bits`);
  if (has(DeviceStatus.DRIVER) && !has(DeviceStatus.ACKNOWLEDGE)) problems.push('DRIVER without ACKNOWLEDGE');
  if (has(DeviceStatus.FEATURES_OK)) {
    if (core.legacy) problems.push('FEATURES_OK from a legacy driver');
    if (!has(DeviceStatus.DRIVER)) problems.push('FEATURES_OK without DRIVER');
    // While a reset finishes, status keeps its old value but the features are already gone (spec 2.4).
    if (core.resetPending === undefined) {
      if ((core.driverFeatures & ~core.offeredFeatures) !== 0n) problems.push('FEATURES_OK with features never offered');
      if (!hasFeature(core.driverFeatures, VIRTIO_F_VERSION_1)) problems.push('FEATURES_OK without VERSION_1');
    }
  }
  if (has(DeviceStatus.DRIVER_OK) && !has(core.legacy ? DeviceStatus.DRIVER : DeviceStatus.FEATURES_OK)) problems.push('DRIVER_OK out of sequence');
  if (core.legacy && core.driverFeatures >> 32n !== 0n) problems.push('a legacy driver with feature bits above 31');
  const revisions = rig.device.legacyConfigFields === undefined ? [undefined, 1, 2] : [undefined, 0, 1, 2];
  if (!revisions.includes(revision)) problems.push(`revision ${revision}`);
  if (revision !== undefined && core.legacy !== (revision === 0)) problems.push(`revision ${revision} with legacy ${core.legacy}`);
  for (let index = 0; index < core.queueCount; index++) {
    const slot = core.queueSlot(index);
    if (slot?.enabled !== true) continue;
    if (slot.size > slot.maxSize) problems.push(`queue ${index} enabled with size ${slot.size}`);
    const problem = queueConfigProblem(core.memory, slot, slot.queue?.packed ?? hasFeature(core.driverFeatures, VIRTIO_F_RING_PACKED));
    if (problem !== undefined) problems.push(`queue ${index} enabled: ${problem}`);
  }
  return problems;
}

/** Applies `o`; returns what went wrong with the answers the guest got. */
async function apply(rig: TransportRig, device: LoopbackDevice, o: Op): Promise<string[]> {
  switch (o.kind) {
    case 'program': {
      writePayload(rig, o.payload);
      writeProgram(rig.memory, o.ccws, PROGRAM);
      const intparm = o.ccws.length;
      const cc = rig.transport.startSubchannel(o.at, intparm);
      // A program waiting for a device reset to finish has no status yet (spec 4.3.3.3.1).
      if (cc === ConditionCode.STARTED) return rig.transport.busy ? [] : responseProblems(rig.transport.testSubchannel(), intparm);
      if (cc === ConditionCode.STATUS_PENDING) return rig.transport.statusPending ? [] : ['condition code 1 without status pending'];
      if (cc === ConditionCode.BUSY) return rig.transport.busy ? [] : ['condition code 2 while no program runs'];
      return cc === ConditionCode.NOT_OPERATIONAL && !rig.transport.enabled ? [] : [`condition code ${cc}`];
    }
    case 'tsch':
      rig.transport.testSubchannel();
      return rig.transport.statusPending ? ['status pending after TEST SUBCHANNEL'] : [];
    case 'enable': {
      const busy = rig.transport.busy;
      const cc = rig.transport.setEnabled(o.enabled);
      return cc === (busy ? ConditionCode.BUSY : ConditionCode.STARTED) ? [] : [`MODIFY SUBCHANNEL condition code ${cc}, busy ${busy}`];
    }
    case 'notify': {
      const result = o.viaDiagnose
        ? diagnose500(
            { gpr1: 3n, gpr2: (o.high << 32n) | BigInt(SUBCHANNEL_ID), gpr3: BigInt(o.data), gpr4: 0n },
            (sid) => (sid === SUBCHANNEL_ID ? rig.transport : undefined),
          )
        : BigInt(rig.transport.notify(o.data));
      return result === 0n || result === -22n ? [] : [`notification returned ${result}`];
    }
    case 'configChanged':
      rig.transport.core.configChanged();
      return [];
    case 'scratch': {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, o.value, true);
      device.writeConfig(4, bytes);
      return [];
    }
    case 'reset':
      rig.transport.reset();
      rig.transport.setEnabled(true);
      return [];
    case 'finishReset':
      if (device instanceof SlowResetDevice) device.finishResets();
      await settle();
      return [];
  }
}

/** Runs `ops`, failing at the first answer or state the spec forbids; at the end every program has completed. */
async function check(rig: TransportRig, device: LoopbackDevice, ops: readonly Op[]): Promise<void> {
  for (const [step, o] of ops.entries()) {
    const problems = [...(await apply(rig, device, o)), ...deviceProblems(rig)];
    if (problems.length > 0) expect({ step, op: o.kind, problems }).toEqual({ step, op: o.kind, problems: [] });
  }
  await apply(rig, device, { kind: 'finishReset' });
  expect(rig.transport.busy).toBe(false);
}

/** A modern device, a transitional one, or one whose reset waits for in-flight I/O. */
const deviceKind = fc.constantFrom('modern', 'transitional', 'held');

function makeDevice(kind: 'modern' | 'transitional' | 'held'): LoopbackDevice {
  const options = { features: FEATURES, queueSize: 256 };
  if (kind === 'transitional') return new LegacyLoopbackDevice(options);
  return kind === 'held' ? new SlowResetDevice(options) : new LoopbackDevice(options);
}

describe('property: random channel programs and events (spec 4.3)', () => {
  it('never throw and never leave the device in a state the spec forbids', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60, size: 'max' }), fc.boolean(), deviceKind, async (ops, adapter, kind) => {
        const device = makeDevice(kind);
        await check(transportRig({ device, adapterInterrupts: adapter }), device, ops);
      }),
      { numRuns: 400 },
    );
  }, 60_000);

  /** One CCW with its payload, as a well-behaved driver sends it. */
  const step = (command: number, count: number, payload: Payload): Op => ({ kind: 'program', at: PROGRAM, ccws: [{ command, flags: 0, count, cda: DATA }], payload });
  const status = (value: number): Op => step(CcwCommand.WRITE_STATUS, 1, { kind: 'status', status: value });
  const indicators: Op[] = [
    step(CcwCommand.SET_IND, 8, { kind: 'indicator', address: 0x6000 }),
    step(CcwCommand.SET_CONF_IND, 8, { kind: 'indicator', address: 0x6008 }),
  ];
  /** Revision 2: features with VERSION_1, FEATURES_OK, a split queue, DRIVER_OK. */
  const modern: Op[] = [
    step(CcwCommand.SET_VIRTIO_REV, 4, { kind: 'revision', revision: 2, length: 0 }),
    status(1),
    status(3),
    ...[0, 1].map((index) =>
      step(CcwCommand.WRITE_FEAT, 5, { kind: 'features', index, value: Number((featureBit(VIRTIO_F_VERSION_1) >> BigInt(32 * index)) & 0xffffffffn) }),
    ),
    status(11),
    step(CcwCommand.SET_VQ, 32, { kind: 'queue', index: 0, packed: false, size: 256, garble: null, seed: 9 }),
    ...indicators,
    status(15),
  ];
  /** Revision 0 (spec 4.3.2.1, legacy notes): no features, no FEATURES_OK, a legacy queue, DRIVER_OK. */
  const legacy: Op[] = [
    step(CcwCommand.SET_VIRTIO_REV, 4, { kind: 'revision', revision: 0, length: 0 }),
    status(1),
    status(3),
    step(CcwCommand.WRITE_FEAT, 5, { kind: 'features', index: 0, value: 0 }),
    step(CcwCommand.SET_VQ, 16, { kind: 'legacyQueue', index: 0, size: 256, align: 4096, queue: RAM.start + 0x1000 }),
    ...indicators,
    status(7),
  ];

  for (const [name, wellFormed, kinds] of [
    ['revision 2', modern, ['modern', 'transitional', 'held']],
    ['revision 0 (legacy, big-endian rings)', legacy, ['transitional']],
  ] as const) {
    it(`a well-formed ${name} initialisation followed by random programs keeps the running device consistent`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30, size: 'max' }), fc.constantFrom(...kinds), async (ops, kind) => {
          const device = makeDevice(kind);
          const rig = transportRig({ device });
          await check(rig, device, wellFormed);
          expect(rig.transport.core.driverOk).toBe(true);
          await check(rig, device, ops);
        }),
        { numRuns: 300 },
      );
    }, 60_000);
  }
});
