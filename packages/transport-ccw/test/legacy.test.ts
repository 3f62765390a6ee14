/**
 * Revision 0, the legacy interface of a transitional device (spec 4.3.2.1 and
 * its legacy notes): legacy drivers, which select revision 0 or no revision at
 * all, get 32 feature bits, no FEATURES_OK, the legacy vq_info_block and queue
 * layout, and big-endian rings and configuration fields, as a legacy s390
 * driver keeps them (spec 2.5.3, 2.7.3).
 */
import { CcwDriverTransport, LoopbackDevice } from '@virtio-ts/driver';
import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
  legacySplitRingLayout,
  splitRingSizes,
  type QueueConfig,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, SplitRingDriver, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { CcwCommand, CcwFlag, VirtioCcwRevision } from '../src/index.js';
import {
  DATA,
  END,
  LegacyLoopbackDevice,
  RAM,
  acknowledgedRig,
  command,
  driverRig,
  readFeatures,
  rejected,
  run,
  setQueue,
  setRevision,
  transportRig,
  writeBlock,
  writeFeatures,
  writeStatus,
  type TransportRig,
} from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET } = DeviceStatus;
const ALIGN = CcwDriverTransport.LEGACY_QUEUE_ALIGN;
/** The feature bits the loopback device offers below bit 32: all a legacy driver can see (spec 2.2.3). */
const LEGACY_FEATURES = featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_EVENT_IDX);

/** Places a legacy queue of `size` entries in RAM: one block, in the layout of spec 2.7.2 at `align`. */
function legacyQueue(alloc: GuestAllocator, size: number, align = ALIGN): QueueConfig {
  const bytes = legacySplitRingLayout(0, size, align).deviceAddr + splitRingSizes(size).used;
  return legacySplitRingLayout(alloc.alloc(bytes, Math.max(align, 16)), size, align);
}

/** SET_VQ with struct vq_info_block_legacy (spec 4.3.2.2, legacy note): be64 queue, be32 align, be16 index, be16 num. */
function setLegacyQueue(rig: TransportRig, index: number, queue: number, align: number, size: number, count = 16) {
  writeBlock(rig.memory, 16, (v) => {
    v.setBigUint64(0, BigInt(queue));
    v.setUint32(8, align);
    v.setUint16(12, index);
    v.setUint16(14, size);
  });
  return run(rig.transport, [{ command: CcwCommand.SET_VQ, count }], rig.memory);
}

/** A transitional device behind a transport, with revision 0 selected and the driver at DRIVER. */
function legacyRig(): TransportRig {
  const rig = transportRig({ device: new LegacyLoopbackDevice() });
  expect(setRevision(rig, VirtioCcwRevision.LEGACY).deviceStatus).toBe(END);
  expect(writeStatus(rig, ACKNOWLEDGE).deviceStatus).toBe(END);
  expect(writeStatus(rig, ACKNOWLEDGE | DRIVER).deviceStatus).toBe(END);
  return rig;
}

describe('revision 0 end to end: a transitional guest driver on a transitional device', () => {
  for (const adapter of [true, false]) {
    it(`spec 4.3.2.1, 2.7.3: the legacy driver initialises the device and moves requests over big-endian rings (${adapter ? 'adapter' : 'classic'} indicators)`, () => {
      const device = new LegacyLoopbackDevice();
      const { driver, transport, memory, causes } = acknowledgedRig({ device, driverLegacy: true, driverAdapter: adapter, driverRevision: 0 });
      expect(driver.revision).toBe(0);
      expect(transport.revision).toBe(0);
      expect(transport.core.legacy).toBe(true);
      // One 32-bit feature word: VERSION_1 and every bit above 31 are out of sight (spec 2.2.3).
      const offered = driver.readDeviceFeatures();
      expect(offered).toBe(LEGACY_FEATURES);
      driver.writeDriverFeatures(offered);
      // No FEATURES_OK step (spec 3.1.2): the device refuses it and the status stays.
      driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
      expect(transport.core.status).toBe(ACKNOWLEDGE | DRIVER);
      const size = driver.queueMaxSize(0);
      const config = legacyQueue(new GuestAllocator(RAM.start, RAM.end, { seed: 5 }), size);
      expect(driver.setupQueue(0, placeSplitRing(new GuestAllocator(RAM.start, RAM.end, { seed: 6 }), size))).toBe(false);
      expect(driver.setupQueue(0, config)).toBe(true);
      expect(transport.core.queueSlot(0)).toMatchObject({ enabled: true, ...config });
      const ring = new SplitRingDriver(memory, config, { eventIdx: true, byteOrder: 'big-endian' });
      driver.setStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
      expect(transport.core.driverFeatures).toBe(LEGACY_FEATURES);
      expect(transport.core.status).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
      expect(driver.indicatorMode).toBe(adapter ? 'adapter' : 'classic');

      const buffers = new GuestAllocator(RAM.start, RAM.end, { seed: 7 });
      const out = buffers.alloc(64, 8);
      const back = buffers.alloc(64, 8);
      for (let i = 0; i < 40; i++) {
        memory.fill(out, 64, i + 1);
        memory.fill(back, 64, 0);
        const chain = [
          { addr: out, len: 64, writable: false },
          { addr: back, len: 64, writable: true },
        ];
        // Every other request through an indirect table (VIRTIO_F_INDIRECT_DESC, big-endian too).
        ring.add(chain, i % 2 === 0 ? {} : { indirectTable: buffers.alloc(32, 16) });
        // VIRTIO_F_EVENT_IDX: an interrupt once this request is used (spec 2.7.7.2).
        ring.setUsedEvent(i);
        ring.publish();
        if (ring.kickNeeded()) driver.notify(0);
        expect(ring.takeUsed()).toMatchObject({ len: 64 });
        expect(memory.getU8(back + 63)).toBe(i + 1);
      }
      expect(device.served).toBe(40);
      expect(causes.filter((c) => c.kind === 'queue')).toHaveLength(40);
      // In guest memory the used index is big-endian, as a big-endian guest reads it.
      expect([...(memory.slice(config.deviceAddr + 2, 2) ?? [])]).toEqual([0, 40]);
      // `served`, a le32 in the device, reads big-endian (spec 2.5.3) ...
      expect([...driver.readConfig(0, 4)]).toEqual([0, 0, 0, 40]);
      // ... and a big-endian write of `scratch` lands in the device as its le32.
      driver.writeConfig(4, Uint8Array.of(0x11, 0x22, 0x33, 0x44));
      const scratch = new Uint8Array(4);
      device.readConfig(4, scratch);
      expect([...scratch]).toEqual([0x44, 0x33, 0x22, 0x11]);
      expect(causes.at(-1)).toEqual({ kind: 'config' });
      expect(transport.core.violations).toEqual({ status: 1, features: 0, config: 0, notify: 0, queue: 0 });
    });
  }

  it('spec 4.3.2.1.3: a transitional driver on a device that takes no revision drives it without one, which a non-transitional device refuses', () => {
    const rig = driverRig({ device: new LoopbackDevice(), driverLegacy: true, driverRevision: 0 });
    expect(rig.driver.revision).toBe(0);
    expect(rig.transport.revision).toBeUndefined();
    expect(() => rig.driver.readDeviceFeatures()).toThrow(/rejected READ_FEAT/);
    expect(rig.log.at(-1)).toMatch(/legacy drivers are refused: the device declares no legacyConfigFields/);
  });

  it('a non-transitional guest driver stops at revision 1 (spec 4.3.2.1.3)', () => {
    expect(() => driverRig({ device: new LegacyLoopbackDevice(), driverRevision: 0 })).toThrow(/accepts no virtio-ccw revision.*legacy option/);
  });

  it('a modern driver on a transitional device gets revision 2, VERSION_1 and little-endian fields', () => {
    const rig = driverRig({ device: new LegacyLoopbackDevice(), driverLegacy: true });
    expect(rig.driver.revision).toBe(2);
    expect(rig.transport.core.legacy).toBe(false);
    expect(hasFeature(rig.driver.readDeviceFeatures(), VIRTIO_F_VERSION_1)).toBe(true);
    rig.driver.writeConfig(4, Uint8Array.of(0x11, 0x22, 0x33, 0x44));
    const scratch = new Uint8Array(4);
    rig.device.readConfig(4, scratch);
    expect([...scratch]).toEqual([0x11, 0x22, 0x33, 0x44]);
  });
});

describe('selecting revision 0 (spec 4.3.2.1)', () => {
  it('spec 4.3.2.1.3: a virtio command before SET_VIRTIO_REV makes the driver a legacy one; a later SET_VIRTIO_REV is rejected', () => {
    const rig = transportRig({ device: new LegacyLoopbackDevice() });
    expect(readFeatures(rig, 0)).toBe(Number(LEGACY_FEATURES));
    expect(rig.transport.revision).toBe(0);
    expect(rig.transport.core.legacy).toBe(true);
    expect(rejected(setRevision(rig, 2))).toBe(true);
    expect(rejected(setRevision(rig, 0))).toBe(true);
    expect(rig.transport.revision).toBe(0);
  });

  it('a device without legacyConfigFields is non-transitional: revision 0 and legacy drivers are refused, saying why', () => {
    const rig = transportRig({ device: new LoopbackDevice() });
    expect(rejected(setRevision(rig, 0))).toBe(true);
    expect(rig.log.at(-1)).toMatch(/revision 0 is refused: the device declares no legacyConfigFields/);
    expect(rejected(command(rig, CcwCommand.READ_FEAT, 5))).toBe(true);
    expect(rig.transport.revision).toBeUndefined();
  });

  it('transitional: false refuses revision 0 on a device that could take it; transitional: true needs legacyConfigFields', () => {
    const rig = transportRig({ device: new LegacyLoopbackDevice(), transitional: false });
    expect(rejected(setRevision(rig, 0))).toBe(true);
    expect(rig.log.at(-1)).toMatch(/configured non-transitional/);
    expect(setRevision(rig, 1).deviceStatus).toBe(END);
    expect(() => transportRig({ device: new LoopbackDevice(), transitional: true })).toThrow(/needs legacyConfigFields/);
  });

  it('revision 0 with data is rejected', () => {
    const rig = transportRig({ device: new LegacyLoopbackDevice() });
    writeBlock(rig.memory, 8, (v) => v.setUint16(2, 4) /* revision 0, length 4 */);
    expect(rejected(run(rig.transport, [{ command: CcwCommand.SET_VIRTIO_REV, count: 8 }], rig.memory))).toBe(true);
    expect(rig.transport.revision).toBeUndefined();
  });

  it('a device last driven through revision 2 is reset when a legacy driver selects revision 0, and back', () => {
    const rig = transportRig({ device: new LegacyLoopbackDevice() });
    expect(setRevision(rig, 2).deviceStatus).toBe(END);
    writeStatus(rig, ACKNOWLEDGE);
    writeStatus(rig, ACKNOWLEDGE | DRIVER);
    expect(rig.transport.core.status).toBe(ACKNOWLEDGE | DRIVER);
    rig.transport.setEnabled(false);
    rig.transport.setEnabled(true);
    expect(setRevision(rig, 0).deviceStatus).toBe(END);
    expect(rig.transport.core).toMatchObject({ status: 0, legacy: true });
    writeStatus(rig, ACKNOWLEDGE);
    rig.transport.setEnabled(false);
    rig.transport.setEnabled(true);
    expect(setRevision(rig, 1).deviceStatus).toBe(END);
    expect(rig.transport.core).toMatchObject({ status: 0, legacy: false });
  });

  it('feature bits above 31 written through revision 1 at status 0 are gone when a legacy driver takes over (spec 2.2.3)', () => {
    const rig = transportRig({ device: new LegacyLoopbackDevice() });
    expect(setRevision(rig, 1).deviceStatus).toBe(END);
    expect(writeFeatures(rig, 1, 0x45).deviceStatus).toBe(END);
    expect(rig.transport.core.driverFeatures).toBe(0x45n << 32n);
    rig.transport.setEnabled(false);
    rig.transport.setEnabled(true);
    // A legacy driver: no SET_VIRTIO_REV, straight to a virtio command.
    expect(writeStatus(rig, ACKNOWLEDGE).deviceStatus).toBe(END);
    expect(rig.transport.core).toMatchObject({ status: ACKNOWLEDGE, legacy: true, driverFeatures: 0n });
  });
});

describe('the legacy interface (revision 0)', () => {
  it('spec 4.3.2.3: READ_STATUS is not part of revision 0', () => {
    expect(rejected(command(legacyRig(), CcwCommand.READ_STATUS, 1))).toBe(true);
  });

  it('spec 2.2.3: one 32-bit feature word; higher words read zeros and take only zeros', () => {
    const rig = legacyRig();
    expect(readFeatures(rig, 0)).toBe(Number(LEGACY_FEATURES));
    expect(readFeatures(rig, 1)).toBe(0);
    expect(writeFeatures(rig, 1, 0).deviceStatus).toBe(END);
    expect(rejected(writeFeatures(rig, 1, 1))).toBe(true);
    expect(writeFeatures(rig, 0, Number(LEGACY_FEATURES)).deviceStatus).toBe(END);
    expect(rig.transport.core.driverFeatures).toBe(LEGACY_FEATURES);
  });

  it('spec 3.1.2: FEATURES_OK is refused and the status unchanged; DRIVER_OK follows DRIVER', () => {
    const rig = legacyRig();
    expect(rejected(writeStatus(rig, ACKNOWLEDGE | DRIVER | FEATURES_OK))).toBe(true);
    expect(rig.transport.core.status).toBe(ACKNOWLEDGE | DRIVER);
    expect(writeStatus(rig, ACKNOWLEDGE | DRIVER | DRIVER_OK).deviceStatus).toBe(END);
    expect(rig.transport.core.driverOk).toBe(true);
  });

  it('SET_VQ takes struct vq_info_block_legacy: the queue lies in the legacy layout at the driver\'s alignment (spec 2.7.2)', () => {
    for (const align of [ALIGN, 64, 4]) {
      const rig = legacyRig();
      const config = legacyQueue(new GuestAllocator(RAM.start, RAM.end, { seed: align }), 256, align);
      expect(setLegacyQueue(rig, 0, config.descAddr, align, 256)).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 0 });
      expect(rig.transport.core.queueSlot(0)).toMatchObject({ enabled: true, ...config });
    }
  });

  it('SET_VQ refuses a short block, a bad alignment, size or place, leaving the device healthy; address 0 releases the queue', () => {
    const rig = legacyRig();
    const config = legacyQueue(new GuestAllocator(RAM.start, RAM.end, { seed: 3 }), 256);
    expect(rejected(setLegacyQueue(rig, 0, config.descAddr, ALIGN, 256, 15))).toBe(true);
    // A revision 1 block read as the legacy one: its res0 (0xdeadbeef) is no alignment.
    expect(rejected(setQueue(rig, 0, config))).toBe(true);
    expect(rig.transport.core.queueSlot(0)?.enabled).toBe(false);
    for (const align of [0, 2, 3, 4095, 0xffffffff]) expect(rejected(setLegacyQueue(rig, 0, config.descAddr, align, 256))).toBe(true);
    expect(rejected(setLegacyQueue(rig, 0, config.descAddr, ALIGN, 512))).toBe(true);
    expect(rejected(setLegacyQueue(rig, 0, config.descAddr, ALIGN, 100))).toBe(true);
    expect(rejected(setLegacyQueue(rig, 0, config.descAddr + 8, ALIGN, 256))).toBe(true);
    expect(rejected(setLegacyQueue(rig, 0, RAM.end - 4096, ALIGN, 256))).toBe(true);
    expect(rejected(setLegacyQueue(rig, 0, 2 ** 60, ALIGN, 256))).toBe(true);
    expect(rejected(setLegacyQueue(rig, 1, config.descAddr, ALIGN, 256))).toBe(true);
    expect(rig.transport.core.status & DEVICE_NEEDS_RESET).toBe(0);
    expect(setLegacyQueue(rig, 0, config.descAddr, ALIGN, 256).deviceStatus).toBe(END);
    expect(rejected(setLegacyQueue(rig, 0, config.descAddr, ALIGN, 256))).toBe(true);
    expect(setLegacyQueue(rig, 0, 0, 0, 0).deviceStatus).toBe(END);
    expect(rig.transport.core.queueSlot(0)?.enabled).toBe(false);
  });

  it('SET_VQ with SLI and a longer count takes the first 16 bytes', () => {
    const rig = legacyRig();
    const config = legacyQueue(new GuestAllocator(RAM.start, RAM.end, { seed: 4 }), 256);
    writeBlock(rig.memory, 32, (v) => {
      v.setBigUint64(0, BigInt(config.descAddr));
      v.setUint32(8, ALIGN);
      v.setUint16(14, 256);
    });
    const status = run(rig.transport, [{ command: CcwCommand.SET_VQ, count: 32, flags: CcwFlag.SLI }], rig.memory);
    expect(status).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 16 });
    expect(rig.transport.core.queueSlot(0)).toMatchObject({ enabled: true, ...config });
  });

  it('the configuration space reads big-endian field by field through READ_CONF, at any count', () => {
    const device = new LegacyLoopbackDevice();
    const rig = transportRig({ device });
    expect(setRevision(rig, 0).deviceStatus).toBe(END);
    const scratch = new Uint8Array(4);
    new DataView(scratch.buffer).setUint32(0, 0xa1b2c3d4, true);
    device.writeConfig(4, scratch);
    rig.memory.fill(DATA, 8, 0xee);
    expect(run(rig.transport, [{ command: CcwCommand.READ_CONF, count: 6 }], rig.memory).deviceStatus).toBe(END);
    expect([...(rig.memory.slice(DATA, 8) ?? [])]).toEqual([0, 0, 0, 0, 0xa1, 0xb2, 0xee, 0xee]);
  });
});
