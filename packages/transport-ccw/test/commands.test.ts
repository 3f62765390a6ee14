/**
 * The virtio-ccw commands (spec 4.3.2, 4.3.3) written by hand into channel
 * programs: revisions, features, status, configuration, queues, indicators,
 * DIAGNOSE 0x500 notifications and reset, with the refusals the spec requires.
 */
import { SlowResetDevice } from '@virtio-ts/driver/conformance';
import { LoopbackDevice } from '@virtio-ts/driver';
import {
  DeviceStatus,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
  type ActivationContext,
  type QueueConfig,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, SplitRingDriver, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { CcwCommand, CcwFlag, ConditionCode, SubchannelStatus, diagnose500 } from '../src/index.js';
import {
  DATA,
  END,
  PROGRAM,
  RAM,
  SUBCHANNEL_ID,
  command,
  readFeatures,
  rejected,
  run,
  setQueue,
  setRevision,
  settle,
  transportRig,
  writeBlock,
  writeFeatures,
  writeProgram,
  writeStatus,
  type TransportRig,
} from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET } = DeviceStatus;

const setIndicators = (rig: TransportRig, code: number, address: number) => command(rig, code, 8, (v) => v.setBigUint64(0, BigInt(address)));
const setAdapter = (rig: TransportRig, summary: number, area: number, bit: number, isc: number) =>
  command(
    rig,
    CcwCommand.SET_IND_ADAPTER,
    25,
    (v) => {
      v.setBigUint64(0, BigInt(summary));
      v.setBigUint64(8, BigInt(area));
      v.setBigUint64(16, BigInt(bit));
      v.setUint8(24, isc);
    },
    CcwFlag.SLI,
  );

/** Revision 2, features negotiated (VERSION_1 plus `extra`), FEATURES_OK. */
function negotiated(rig: TransportRig, extra = 0n): void {
  expect(setRevision(rig, 2).deviceStatus).toBe(END);
  writeStatus(rig, ACKNOWLEDGE);
  writeStatus(rig, ACKNOWLEDGE | DRIVER);
  const features = featureBit(VIRTIO_F_VERSION_1) | extra;
  writeFeatures(rig, 0, Number(features & 0xffffffffn));
  writeFeatures(rig, 1, Number(features >> 32n));
  expect(writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK).deviceStatus).toBe(END);
}

function ring(packed = false) {
  const alloc = new GuestAllocator(RAM.start, RAM.end, { seed: 3 });
  return packed ? placePackedRing(alloc, 256) : placeSplitRing(alloc, 256);
}

/** {@link negotiated}, then queue 0 set up at {@link ring} and classic queue indicators at 0x6000; returns where the queue is. */
function withQueue(rig: TransportRig): QueueConfig {
  negotiated(rig);
  const config = ring();
  setQueue(rig, 0, config);
  setIndicators(rig, CcwCommand.SET_IND, 0x6000);
  return config;
}

describe('SET_VIRTIO_REV (spec 4.3.2.1)', () => {
  it('a non-transitional device rejects virtio commands before a revision is set (legacy drivers, spec 4.3.2.1.3)', () => {
    const rig = transportRig();
    expect(rejected(command(rig, CcwCommand.READ_FEAT, 5))).toBe(true);
    expect(rejected(writeStatus(rig, ACKNOWLEDGE))).toBe(true);
    expect(rig.transport.core.status).toBe(0);
  });

  it('revision 0, revisions above the maximum and revisions with data are rejected', () => {
    const rig = transportRig({ maxRevision: 1 });
    expect(rejected(setRevision(rig, 0))).toBe(true);
    expect(rejected(setRevision(rig, 2))).toBe(true);
    expect(rejected(setRevision(rig, 3))).toBe(true);
    expect(rejected(setRevision(rig, 0xffff))).toBe(true);
    writeBlock(rig.memory, 8, (v) => v.setUint16(2, 4) /* revision 0, length 4 */);
    expect(rejected(run(rig.transport, [{ command: CcwCommand.SET_VIRTIO_REV, count: 8 }], rig.memory))).toBe(true);
    expect(rejected(setRevision(rig, 1, 4))).toBe(true);
    expect(rig.transport.revision).toBeUndefined();
    expect(setRevision(rig, 1).deviceStatus).toBe(END);
    expect(rig.transport.revision).toBe(1);
  });

  it('a second SET_VIRTIO_REV is rejected, even for the same revision (spec 4.3.2.1.1)', () => {
    const rig = transportRig();
    expect(setRevision(rig, 1).deviceStatus).toBe(END);
    expect(rejected(setRevision(rig, 2))).toBe(true);
    expect(rejected(setRevision(rig, 1))).toBe(true);
    expect(rig.transport.revision).toBe(1);
  });

  it('READ_STATUS is rejected in revision 1 and answers in revision 2 (spec 4.3.2.3)', () => {
    const one = transportRig();
    setRevision(one, 1);
    expect(rejected(command(one, CcwCommand.READ_STATUS, 1))).toBe(true);
    const two = transportRig();
    setRevision(two, 2);
    writeStatus(two, ACKNOWLEDGE);
    rig2ReadsStatus(two, ACKNOWLEDGE);
  });

  it('enabling the subchannel unsets the revision (spec 4.3.2.1.1)', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    rig.transport.setEnabled(true);
    expect(rig.transport.revision).toBe(2);
    rig.transport.setEnabled(false);
    rig.transport.setEnabled(true);
    expect(rig.transport.revision).toBeUndefined();
    expect(rejected(command(rig, CcwCommand.READ_FEAT, 5))).toBe(true);
    expect(setRevision(rig, 1).deviceStatus).toBe(END);
  });

  it('a count shorter than the revision block is rejected', () => {
    const rig = transportRig();
    expect(rejected(command(rig, CcwCommand.SET_VIRTIO_REV, 2, (v) => v.setUint16(0, 1)))).toBe(true);
  });
});

function rig2ReadsStatus(rig: TransportRig, expected: number): void {
  rig.memory.setU8(DATA, 0xee);
  expect(run(rig.transport, [{ command: CcwCommand.READ_STATUS, count: 1 }], rig.memory).deviceStatus).toBe(END);
  expect(rig.memory.getU8(DATA)).toBe(expected);
}

describe('features (spec 4.3.2.4)', () => {
  it('READ_FEAT returns the offered features as little-endian words, zeros beyond, and no RING_RESET (spec 4.3.4)', () => {
    const rig = transportRig({ loopback: { features: featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_RESET) | featureBit(VIRTIO_F_NOTIFICATION_DATA) | 0x5n } });
    setRevision(rig, 2);
    expect(readFeatures(rig, 0)).toBe(5);
    expect(readFeatures(rig, 1)).toBe(1 | (1 << (VIRTIO_F_NOTIFICATION_DATA - 32)));
    expect(readFeatures(rig, 2)).toBe(0);
    expect(readFeatures(rig, 255)).toBe(0);
  });

  it('WRITE_FEAT after FEATURES_OK is rejected and changes nothing', () => {
    const rig = transportRig();
    negotiated(rig);
    expect(rejected(writeFeatures(rig, 1, 1 | 1 << (VIRTIO_F_RING_PACKED - 32)))).toBe(true);
    expect(rig.transport.core.driverFeatures).toBe(featureBit(VIRTIO_F_VERSION_1));
    expect(rig.transport.core.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  });

  it('feature words beyond those offered take zeros only', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    expect(writeFeatures(rig, 7, 0).deviceStatus).toBe(END);
    expect(rejected(writeFeatures(rig, 7, 1))).toBe(true);
  });
});

describe('WRITE_STATUS and READ_STATUS (spec 4.3.2.3)', () => {
  it('a refused FEATURES_OK is a command reject and leaves the status unchanged', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    writeStatus(rig, ACKNOWLEDGE);
    writeStatus(rig, ACKNOWLEDGE | DRIVER);
    writeFeatures(rig, 0, 1 << 20); // never offered, and no VERSION_1
    expect(rejected(writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK))).toBe(true);
    rig2ReadsStatus(rig, ACKNOWLEDGE | DRIVER);
  });

  it('an out-of-sequence status is a command reject and leaves the status unchanged', () => {
    const rig = transportRig();
    negotiated(rig);
    expect(rejected(writeStatus(rig, ACKNOWLEDGE))).toBe(true);
    expect(rejected(writeStatus(rig, ACKNOWLEDGE | DRIVER | DRIVER_OK))).toBe(true);
    rig2ReadsStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK);
  });

  it('a status with bits spec 2.1 does not define is rejected', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    for (const undefinedBit of [0x10, 0x20]) expect(rejected(writeStatus(rig, ACKNOWLEDGE | undefinedBit))).toBe(true);
    rig2ReadsStatus(rig, 0);
  });

  it('a status adding FEATURES_OK together with other bits is rejected whole', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    writeStatus(rig, ACKNOWLEDGE);
    writeFeatures(rig, 1, 1);
    expect(rejected(writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK))).toBe(true);
    rig2ReadsStatus(rig, ACKNOWLEDGE);
  });

  it('status 0 resets the device like VDEV_RESET', () => {
    const rig = transportRig();
    negotiated(rig);
    expect(writeStatus(rig, 0).deviceStatus).toBe(END);
    rig2ReadsStatus(rig, 0);
    expect(rig.transport.core.driverFeatures).toBe(0n);
    expect(rig.transport.revision).toBe(2);
  });
});

describe('configuration (spec 4.3.2.5)', () => {
  it('READ_CONF: a count up to the configuration size is exact; beyond it the residual shows the size', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    const short = run(rig.transport, [{ command: CcwCommand.READ_CONF, count: 6 }], rig.memory);
    expect(short).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 0 });
    const long = run(rig.transport, [{ command: CcwCommand.READ_CONF, count: 100 }], rig.memory);
    expect(long).toMatchObject({ deviceStatus: END, subchannelStatus: SubchannelStatus.INCORRECT_LENGTH, residualCount: 92 });
    const sli = run(rig.transport, [{ command: CcwCommand.READ_CONF, count: 100, flags: CcwFlag.SLI }], rig.memory);
    expect(sli).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 92 });
  });

  it('WRITE_CONF hands the device only the bytes that changed, so echoed read-only fields are not written', () => {
    const device = new LoopbackDevice();
    const rig = transportRig({ device });
    setRevision(rig, 2);
    writeBlock(rig.memory, 8, (v) => {
      v.setUint32(0, 0x77, true); // `served` is read-only; the loopback device drops a write that touches it
      v.setUint32(4, 0x12345678, true);
    });
    expect(run(rig.transport, [{ command: CcwCommand.WRITE_CONF, count: 8 }], rig.memory).deviceStatus).toBe(END);
    const config = new Uint8Array(8);
    rig.transport.core.readConfig(0, config);
    expect(new DataView(config.buffer).getUint32(4, true)).toBe(0x12345678);
    expect(device.served).toBe(0);
  });

  it('a configuration change sets bit 0 of the configuration indicators and interrupts once (spec 4.3.3.1.1)', () => {
    const rig = transportRig();
    negotiated(rig);
    const indicators = 0x6000;
    expect(setIndicators(rig, CcwCommand.SET_CONF_IND, indicators).deviceStatus).toBe(END);
    writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    rig.ioInterrupts.length = 0;
    rig.transport.core.configChanged();
    rig.transport.core.configChanged();
    expect(rig.memory.getU64(indicators)).toBe(1n << 56n); // bit 0 of a big-endian u64: the last byte
    // The second change found status pending: no second interruption.
    expect(rig.ioInterrupts).toEqual([0]);
    expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 0, deviceStatus: 0, subchannelStatus: 0, statusControl: 0x11 });
  });
});

describe('SET_VQ and READ_VQ_CONF (spec 4.3.2.2)', () => {
  it('READ_VQ_CONF reports each queue maximum and 0 for queues that do not exist', () => {
    const rig = transportRig({ loopback: { queueSize: 64 } });
    setRevision(rig, 2);
    for (const [index, max] of [[0, 64], [1, 0], [0xffff, 0]] as const) {
      expect(command(rig, CcwCommand.READ_VQ_CONF, 4, (v) => v.setUint16(0, index)).deviceStatus).toBe(END);
      expect(new DataView(new Uint8Array([rig.memory.getU8(DATA + 2), rig.memory.getU8(DATA + 3)]).buffer).getUint16(0)).toBe(max);
    }
  });

  it('rejects a size above the maximum, a split size that is not a power of two, and rings outside guest memory, without DEVICE_NEEDS_RESET', () => {
    const rig = transportRig();
    negotiated(rig);
    const good = ring();
    expect(rejected(setQueue(rig, 0, { ...good, size: 512 }))).toBe(true);
    expect(rejected(setQueue(rig, 0, { ...good, size: 100 }))).toBe(true);
    expect(rejected(setQueue(rig, 0, { ...good, deviceAddr: 0x20000 }))).toBe(true);
    expect(rejected(setQueue(rig, 0, { ...good, descAddr: RAM.end - 16 }))).toBe(true);
    expect(rejected(setQueue(rig, 0, { ...good, driverAddr: 2 ** 60 }))).toBe(true);
    expect(rejected(setQueue(rig, 1, good))).toBe(true);
    expect(rig.transport.core.status & DEVICE_NEEDS_RESET).toBe(0);
    expect(setQueue(rig, 0, good).deviceStatus).toBe(END);
    expect(rig.transport.core.queueSlot(0)).toMatchObject({ enabled: true, ...good });
  });

  it('rejects a queue before FEATURES_OK, when its layout is not yet known (spec 3.1.1), but releases one any time', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    writeStatus(rig, ACKNOWLEDGE);
    writeStatus(rig, ACKNOWLEDGE | DRIVER);
    expect(rejected(setQueue(rig, 0, ring()))).toBe(true);
    expect(rig.transport.core.queueSlot(0)?.enabled).toBe(false);
    expect(setQueue(rig, 0, { size: 0, descAddr: 0, driverAddr: 0, deviceAddr: 0 }).deviceStatus).toBe(END);
  });

  it('struct vq_info_block is 32 bytes: that count is exact, a shorter one is rejected', () => {
    const rig = transportRig();
    negotiated(rig);
    expect(setQueue(rig, 0, ring())).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 0 });
    writeBlock(rig.memory, 32, () => undefined);
    expect(rejected(run(rig.transport, [{ command: CcwCommand.SET_VQ, count: 31, flags: CcwFlag.SLI }], rig.memory))).toBe(true);
  });

  it('takes a packed ring of any size up to the maximum (spec 2.8)', () => {
    const rig = transportRig();
    negotiated(rig, featureBit(VIRTIO_F_RING_PACKED));
    expect(setQueue(rig, 0, { ...ring(true), size: 100 }).deviceStatus).toBe(END);
  });

  it('a set-up queue must be released (descriptor address 0) before it is set again; a running one cannot be', () => {
    const rig = transportRig();
    negotiated(rig);
    const good = ring();
    setQueue(rig, 0, good);
    expect(rejected(setQueue(rig, 0, good))).toBe(true);
    expect(setQueue(rig, 0, { size: 0, descAddr: 0, driverAddr: 0, deviceAddr: 0 }).deviceStatus).toBe(END);
    expect(rig.transport.core.queueSlot(0)?.enabled).toBe(false);
    expect(setQueue(rig, 0, good).deviceStatus).toBe(END);
    writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(rejected(setQueue(rig, 0, { size: 0, descAddr: 0, driverAddr: 0, deviceAddr: 0 }))).toBe(true);
    expect(rig.transport.core.queueSlot(0)?.queue).toBeDefined();
  });
});

/** A device with 65 queues, the first size 8: more than classic indicators can cover. */
class ManyQueueDevice implements VirtioDevice {
  readonly deviceType = 5;
  readonly deviceFeatures = featureBit(VIRTIO_F_VERSION_1);
  readonly queueMaxSizes = Array.from({ length: 65 }, () => 8);
  readonly configSize = 0;
  readConfig(): void {}
  writeConfig(): void {}
  activate(_context: ActivationContext): void {}
  reset(): void {}
  notify(): void {}
}

describe('indicators (spec 4.3.2.6)', () => {
  it('classic and two-stage queue indicators exclude each other', () => {
    const classic = transportRig();
    setRevision(classic, 2);
    expect(setIndicators(classic, CcwCommand.SET_IND, 0x6000).deviceStatus).toBe(END);
    expect(rejected(setAdapter(classic, 0x6100, 0x6200, 0, 3))).toBe(true);
    const adapter = transportRig();
    setRevision(adapter, 2);
    expect(setAdapter(adapter, 0x6100, 0x6200, 0, 3).deviceStatus).toBe(END);
    expect(rejected(setIndicators(adapter, CcwCommand.SET_IND, 0x6000))).toBe(true);
  });

  it('indicators outside guest memory, an invalid ISC, or a channel subsystem without adapter interruptions are rejected', () => {
    const rig = transportRig();
    setRevision(rig, 2);
    expect(rejected(setIndicators(rig, CcwCommand.SET_IND, 0x20000))).toBe(true);
    expect(rejected(setIndicators(rig, CcwCommand.SET_IND, 0xfffc))).toBe(true);
    expect(rejected(setIndicators(rig, CcwCommand.SET_CONF_IND, 2 ** 62))).toBe(true);
    expect(rejected(setAdapter(rig, 0x20000, 0x6200, 0, 3))).toBe(true);
    expect(rejected(setAdapter(rig, 0x6100, 0xffff, 8, 3))).toBe(true);
    expect(rejected(setAdapter(rig, 0x6100, 0x6200, 2 ** 56, 3))).toBe(true);
    expect(rejected(setAdapter(rig, 0x6100, 0x6200, 0, 8))).toBe(true);
    const none = transportRig({ adapterInterrupts: false });
    setRevision(none, 2);
    expect(rejected(setAdapter(none, 0x6100, 0x6200, 0, 3))).toBe(true);
  });

  /** Queue 0 running on `rig` with indicators set up by `setup`; returns a function that completes one request. */
  function running(rig: TransportRig, setup: () => void): () => void {
    negotiated(rig);
    const config = ring();
    setQueue(rig, 0, config);
    setup();
    writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    const driver = new SplitRingDriver(rig.memory, config);
    return () => {
      driver.add([{ addr: RAM.start, len: 8, writable: false }, { addr: RAM.start + 64, len: 8, writable: true }]);
      driver.publish();
      rig.transport.notify(0);
      expect(driver.takeUsed()).not.toBeNull();
    };
  }

  it('two-stage: the queue bit counts from the left at bit_nr, the summary becomes 0x01, and only a clear summary interrupts (spec 4.3.3.1.2)', () => {
    const rig = transportRig();
    const request = running(rig, () => expect(setAdapter(rig, 0x6100, 0x6200, 13, 2).deviceStatus).toBe(END));
    request();
    expect(rig.memory.getU8(0x6201)).toBe(0x80 >> 5);
    expect(rig.memory.getU8(0x6100)).toBe(0x01);
    request();
    expect(rig.adapterInterrupts).toEqual([2]);
    rig.memory.setU8(0x6100, 0);
    request();
    expect(rig.adapterInterrupts).toEqual([2, 2]);
    expect(rig.ioInterrupts.filter((p) => p === 0)).toEqual([]);
  });

  it('classic: queue n is bit 2^n of a big-endian u64, and a pending status absorbs further interruptions (spec 4.3.3.1.1)', () => {
    const rig = transportRig();
    const request = running(rig, () => expect(setIndicators(rig, CcwCommand.SET_IND, 0x6000).deviceStatus).toBe(END));
    rig.ioInterrupts.length = 0;
    request();
    request();
    expect(rig.memory.getU8(0x6007)).toBe(1);
    expect(rig.ioInterrupts).toEqual([0]);
    expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 0 });
    request();
    expect(rig.ioInterrupts).toEqual([0, 0]);
  });

  it('deregistered indicators (address 0, as Linux does when it deletes its queues) get no bits', () => {
    const rig = transportRig();
    const request = running(rig, () => {
      setAdapter(rig, 0x6100, 0x6200, 0, 3);
      expect(setAdapter(rig, 0x6100, 0, 0, 3).deviceStatus).toBe(END);
    });
    request();
    expect(rig.memory.getU8(0x6100)).toBe(0);
    expect(rig.adapterInterrupts).toEqual([]);
    expect(rejected(setIndicators(rig, CcwCommand.SET_IND, 0x6000))).toBe(true);
  });

  it('classic indicators refuse a device with more than 64 queues', () => {
    const rig = transportRig({ device: new ManyQueueDevice() });
    setRevision(rig, 2);
    expect(rejected(setIndicators(rig, CcwCommand.SET_IND, 0x6000))).toBe(true);
    expect(setAdapter(rig, 0x6100, 0x6200, 7, 3).deviceStatus).toBe(END);
  });
});

describe('DIAGNOSE 0x500 notifications (spec 4.3.3.2)', () => {
  const registers = (gpr3: bigint, gpr2 = BigInt(SUBCHANNEL_ID), gpr1 = 3n) => ({ gpr1, gpr2, gpr3, gpr4: 0n });

  it('routes by the subchannel ID in bits 32-63 of GPR 2, and answers unknown subchannels and queues with -EINVAL', () => {
    const rig = transportRig();
    const find = (sid: number) => (sid === SUBCHANNEL_ID ? rig.transport : undefined);
    expect(diagnose500(registers(0n, (0xffffffffn << 32n) | BigInt(SUBCHANNEL_ID)), find)).toBe(0n);
    expect(diagnose500(registers(0n, 0x00010043n), find)).toBe(-22n);
    expect(diagnose500(registers(1n), find)).toBe(-22n);
    expect(diagnose500(registers(0n, BigInt(SUBCHANNEL_ID), 2n), find)).toBeUndefined();
  });

  it('notifications before DRIVER_OK are ignored (a driver that never writes DRIVER_OK gets no service)', () => {
    const device = new LoopbackDevice();
    const rig = transportRig({ device });
    const config = withQueue(rig);
    const driver = new SplitRingDriver(rig.memory, config);
    driver.add([{ addr: RAM.start, len: 8, writable: false }, { addr: RAM.start + 64, len: 8, writable: true }]);
    driver.publish();
    expect(rig.transport.notify(0)).toBe(0);
    expect(device.served).toBe(0);
    expect(driver.takeUsed()).toBeNull();
    expect(rig.ioInterrupts.filter((p) => p === 0)).toEqual([]);
    expect(rig.transport.core.violations.notify).toBe(1);
  });

  it('with VIRTIO_F_NOTIFICATION_DATA the queue receives the whole notification value', () => {
    const rig = transportRig({ loopback: { features: featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_NOTIFICATION_DATA) } });
    negotiated(rig, featureBit(VIRTIO_F_NOTIFICATION_DATA));
    setQueue(rig, 0, ring());
    writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    const data = (1 << 31) | (0x1234 << 16); // next_wrap, next_off, vq_index 0
    expect(rig.transport.notify(data)).toBe(0);
    expect(rig.transport.core.queueSlot(0)?.queue?.notificationData).toBe(data >>> 0);
  });
});

describe('VDEV_RESET (spec 4.3.3.3)', () => {
  it('resets the status and drops the indicators: no notifications after it completes', () => {
    const device = new LoopbackDevice();
    const rig = transportRig({ device });
    withQueue(rig);
    setIndicators(rig, CcwCommand.SET_CONF_IND, 0x6008);
    writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(run(rig.transport, [{ command: CcwCommand.VDEV_RESET, count: 0 }], rig.memory).deviceStatus).toBe(END);
    rig2ReadsStatus(rig, 0);
    rig.ioInterrupts.length = 0;
    rig.transport.core.configChanged();
    expect(rig.memory.getU64(0x6000)).toBe(0n);
    expect(rig.memory.getU64(0x6008)).toBe(0n);
    expect(rig.ioInterrupts).toEqual([]);
    expect(rig.transport.revision).toBe(2);
  });

  /** A running device whose reset waits for its in-flight I/O (SlowResetDevice), with queue 0 and indicators set up. */
  function heldRig(): TransportRig & { device: SlowResetDevice } {
    const device = new SlowResetDevice();
    const rig = transportRig({ device });
    withQueue(rig);
    writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    rig.ioInterrupts.length = 0;
    return { ...rig, device };
  }

  it('spec 4.3.3.3.1: completes only once the device has finished its reset and status reads 0; the subchannel is busy meanwhile', async () => {
    const rig = heldRig();
    writeProgram(rig.memory, [{ command: CcwCommand.VDEV_RESET, count: 0 }]);
    expect(rig.transport.startSubchannel(PROGRAM, 0x77)).toBe(ConditionCode.STARTED);
    expect(rig.device.resetsUnderWay).toBe(1);
    expect(rig.transport.testSubchannel()).toBeUndefined();
    expect(rig.ioInterrupts).toEqual([]);
    expect(rig.transport.busy).toBe(true);
    expect(rig.transport.core.status).not.toBe(0);
    expect(rig.transport.startSubchannel(PROGRAM, 0x78)).toBe(ConditionCode.BUSY);
    expect(rig.transport.setEnabled(false)).toBe(ConditionCode.BUSY);
    expect(rig.transport.enabled).toBe(true);
    await settle();
    expect(rig.ioInterrupts).toEqual([]);
    rig.device.finishResets();
    await settle();
    expect(rig.transport.core.status).toBe(0);
    expect(rig.ioInterrupts).toEqual([0x77]);
    expect(rig.transport.busy).toBe(false);
    expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 0x77, deviceStatus: END, subchannelStatus: 0, ccwAddress: PROGRAM + 8 });
    rig2ReadsStatus(rig, 0);
  });

  it('a program chained after VDEV_RESET goes on once the reset has finished', async () => {
    const rig = heldRig();
    rig.memory.setU8(DATA, ACKNOWLEDGE);
    writeProgram(rig.memory, [
      { command: CcwCommand.VDEV_RESET, count: 0, flags: CcwFlag.CC },
      { command: CcwCommand.WRITE_STATUS, count: 1 },
    ]);
    expect(rig.transport.startSubchannel(PROGRAM, 5)).toBe(ConditionCode.STARTED);
    expect(rig.transport.core.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    rig.device.finishResets();
    await settle();
    expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 5, deviceStatus: END, subchannelStatus: 0, ccwAddress: PROGRAM + 16 });
    expect(rig.transport.core.status).toBe(ACKNOWLEDGE);
  });

  it('WRITE_STATUS 0 waits for the reset as VDEV_RESET does', async () => {
    const rig = heldRig();
    rig.memory.setU8(DATA, 0);
    writeProgram(rig.memory, [{ command: CcwCommand.WRITE_STATUS, count: 1 }]);
    expect(rig.transport.startSubchannel(PROGRAM, 9)).toBe(ConditionCode.STARTED);
    expect(rig.transport.testSubchannel()).toBeUndefined();
    rig.device.finishResets();
    await settle();
    expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 9, deviceStatus: END });
    rig2ReadsStatus(rig, 0);
  });

  it('a subchannel reset drops a program waiting for VDEV_RESET: no status and no interruption come of it', async () => {
    const rig = heldRig();
    writeProgram(rig.memory, [{ command: CcwCommand.VDEV_RESET, count: 0 }]);
    expect(rig.transport.startSubchannel(PROGRAM, 3)).toBe(ConditionCode.STARTED);
    rig.transport.reset();
    expect(rig.transport.busy).toBe(false);
    rig.device.finishResets();
    await settle();
    expect(rig.ioInterrupts).toEqual([]);
    expect(rig.transport.statusPending).toBe(false);
    expect(rig.transport.core.status).toBe(0);
    rig.transport.setEnabled(true);
    expect(setRevision(rig, 2).deviceStatus).toBe(END);
  });
});
