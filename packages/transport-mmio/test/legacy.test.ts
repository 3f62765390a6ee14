import { LoopbackDevice } from '@virtio-ts/driver';
import { SlowResetDevice } from '@virtio-ts/driver/conformance';
import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  featureBit,
  legacySplitRingLayout,
  type GuestMemory,
} from '@virtio-ts/virtqueue';
import { SplitRingDriver } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { INTERRUPT_USED_BUFFER, MmioRegister as Reg, MmioTransport } from '../src/index.js';
import { BASE, IRQ, testMemory } from './harness.js';

const PAGE_SIZE = 4096;
const LEGACY_WANTED = Number(featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_EVENT_IDX));
const { ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, DEVICE_NEEDS_RESET } = DeviceStatus;

interface LegacyRig {
  readonly memory: GuestMemory;
  readonly device: LoopbackDevice;
  readonly transport: MmioTransport;
  readonly line: boolean[];
  read(offset: number): number;
  write(offset: number, value: number): void;
}

function legacyRig(device: LoopbackDevice = new LoopbackDevice()): LegacyRig {
  const memory = testMemory();
  const line: boolean[] = [];
  const transport = new MmioTransport({ device, memory, baseAddress: BASE, irq: { number: IRQ, set: (level) => line.push(level) }, version: 1 });
  return {
    memory,
    device,
    transport,
    line,
    read: (offset) => transport.read(offset, 4),
    write: (offset, value) => transport.write(offset, 4, value),
  };
}

/** The legacy ring layout of spec 2.7.2, with the used ring page-aligned as Linux does (QueueAlign = PAGE_SIZE). */
function legacyRing(memory: GuestMemory, pageAddr: number, num: number, eventIdx: boolean): SplitRingDriver {
  return new SplitRingDriver(memory, legacySplitRingLayout(pageAddr, num, PAGE_SIZE), { eventIdx });
}

/**
 * Linux's virtio_mmio probe for a version 1 device, then virtio's
 * initialisation without FEATURES_OK, then vm_setup_vq's legacy branch:
 * GuestPageSize, QueueSel, QueueNum, QueueAlign, QueuePFN.
 */
function linuxLegacyInit(rig: LegacyRig, queuePage: number): { features: number; ring: SplitRingDriver } {
  expect(rig.read(Reg.MagicValue)).toBe(0x74726976);
  expect(rig.read(Reg.Version)).toBe(1);
  expect(rig.read(Reg.DeviceID)).toBe(rig.device.deviceType);
  rig.read(Reg.VendorID);
  rig.write(Reg.GuestPageSize, PAGE_SIZE);
  rig.write(Reg.Status, 0);
  rig.write(Reg.Status, ACKNOWLEDGE);
  rig.write(Reg.Status, ACKNOWLEDGE | DRIVER);
  rig.write(Reg.DeviceFeaturesSel, 1);
  const high = rig.read(Reg.DeviceFeatures);
  rig.write(Reg.DeviceFeaturesSel, 0);
  const offered = rig.read(Reg.DeviceFeatures);
  expect(high).toBe(0);
  const features = (offered & LEGACY_WANTED) >>> 0;
  rig.write(Reg.DriverFeaturesSel, 1);
  rig.write(Reg.DriverFeatures, 0);
  rig.write(Reg.DriverFeaturesSel, 0);
  rig.write(Reg.DriverFeatures, features);
  rig.write(Reg.QueueSel, 0);
  expect(rig.read(Reg.QueuePFN)).toBe(0);
  const num = rig.read(Reg.QueueSizeMax);
  const ring = legacyRing(rig.memory, queuePage * PAGE_SIZE, num, (features & Number(featureBit(VIRTIO_F_EVENT_IDX))) !== 0);
  rig.write(Reg.QueueSize, num);
  rig.write(Reg.QueueAlign, PAGE_SIZE);
  rig.write(Reg.QueuePFN, queuePage);
  rig.write(Reg.Status, ACKNOWLEDGE | DRIVER | DRIVER_OK);
  return { features, ring };
}

function ping(rig: LegacyRig, ring: SplitRingDriver): number {
  rig.memory.write(0x90000, new TextEncoder().encode('ping'));
  ring.add([
    { addr: 0x90000, len: 4, writable: false },
    { addr: 0x90100, len: 8, writable: true },
  ]);
  ring.publish();
  if (ring.kickNeeded()) rig.write(Reg.QueueNotify, 0);
  return 0x90100;
}

describe('MMIO legacy version 1 (spec 4.2.4)', () => {
  it("initialises as Linux's legacy path does, serves a request and interrupts", () => {
    const rig = legacyRig();
    const { features, ring } = linuxLegacyInit(rig, 0x10);
    expect(features).toBe(LEGACY_WANTED);
    expect(rig.read(Reg.Status)).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(rig.read(Reg.QueuePFN)).toBe(0x10);
    // Linux's zero write to the upper feature page is not held against it.
    expect(rig.transport.core.violations).toEqual({ status: 0, features: 0, config: 0, notify: 0, queue: 0 });
    expect(rig.transport.core.driverFeatures).toBe(BigInt(features));

    const back = ping(rig, ring);
    expect(rig.line).toEqual([true]);
    const status = rig.read(Reg.InterruptStatus);
    expect(status).toBe(INTERRUPT_USED_BUFFER);
    rig.write(Reg.InterruptACK, status);
    expect(rig.line).toEqual([true, false]);
    expect(ring.takeUsed()).toEqual({ id: 0, len: 4 });
    expect(new TextDecoder().decode(rig.memory.slice(back, 4))).toBe('ping');
    // Legacy drivers read the configuration byte by byte.
    expect([0, 1, 2, 3].map((i) => rig.transport.read(Reg.Config + i, 1))).toEqual([1, 0, 0, 0]);
  });

  it('spec 4.2.4: reset sets QueuePFN to 0 for every queue; GuestPageSize, written once at probe, survives it', () => {
    const rig = legacyRig();
    linuxLegacyInit(rig, 0x10);
    rig.write(Reg.Status, 0);
    rig.write(Reg.QueueSel, 0);
    expect(rig.read(Reg.QueuePFN)).toBe(0);
    // Linux re-probes without writing GuestPageSize again: the queue still comes up.
    rig.write(Reg.Status, ACKNOWLEDGE);
    rig.write(Reg.Status, ACKNOWLEDGE | DRIVER);
    const ring = legacyRing(rig.memory, 0x20 * PAGE_SIZE, 256, false);
    rig.write(Reg.QueueSel, 0);
    rig.write(Reg.QueueSize, 256);
    rig.write(Reg.QueuePFN, 0x20);
    expect(rig.read(Reg.QueuePFN)).toBe(0x20);
    rig.write(Reg.Status, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    ping(rig, ring);
    expect(rig.read(Reg.InterruptStatus)).toBe(INTERRUPT_USED_BUFFER);
  });

  it('spec 4.2.4: QueuePFN 0 stops the queue; the device no longer touches it', () => {
    const rig = legacyRig();
    const { ring } = linuxLegacyInit(rig, 0x10);
    rig.write(Reg.QueueSel, 0);
    rig.write(Reg.QueuePFN, 0);
    expect(rig.read(Reg.QueuePFN)).toBe(0);
    ping(rig, ring);
    expect(ring.takeUsed()).toBeNull();
    expect(rig.line).toEqual([]);
  });

  it('spec 2.4, 4.2.4: a reset the device finishes later holds the vCPU; a stopped queue reads as in use until the device is done with it', async () => {
    const device = new SlowResetDevice();
    const rig = legacyRig(device);
    linuxLegacyInit(rig, 0x10);
    rig.write(Reg.QueueSel, 0);
    rig.write(Reg.QueuePFN, 0);
    expect(rig.read(Reg.QueuePFN)).toBe(0x10);
    rig.write(Reg.QueuePFN, 0x20);
    expect(rig.transport.core.violations.queue).toBe(1);
    device.finishResets();
    await new Promise((resolve) => setImmediate(resolve));
    expect(rig.read(Reg.QueuePFN)).toBe(0);
    rig.write(Reg.QueuePFN, 0x20);
    expect(rig.read(Reg.QueuePFN)).toBe(0x20);
    // Linux's legacy vm_reset does not read Status back either: the VMM holds the vCPU.
    rig.write(Reg.Status, 0);
    const held = rig.transport.pendingCompletion;
    expect(held).toBeInstanceOf(Promise);
    expect(rig.read(Reg.Status)).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    device.finishResets();
    await held;
    expect(rig.read(Reg.Status)).toBe(0);
    expect(rig.read(Reg.QueuePFN)).toBe(0);
  });

  it('snapshot and restore keep QueuePFN and GuestPageSize, and the queue keeps working', () => {
    const rig = legacyRig();
    const { ring } = linuxLegacyInit(rig, 0x10);
    const saved = rig.transport.snapshot();
    const line: boolean[] = [];
    const moved = new MmioTransport({ device: new LoopbackDevice(), memory: rig.memory, baseAddress: BASE, irq: { number: IRQ, set: (level) => line.push(level) }, version: 1 });
    moved.restore(saved);
    moved.write(Reg.QueueSel, 4, 0);
    expect(moved.read(Reg.QueuePFN, 4)).toBe(0x10);
    const { descAddr, driverAddr, deviceAddr } = rig.transport.core.queueSlot(0) ?? {};
    expect(moved.core.queueSlot(0)).toMatchObject({ enabled: true, descAddr, driverAddr, deviceAddr });
    ping({ ...rig, transport: moved, line, write: (offset, value) => moved.write(offset, 4, value) }, ring);
    expect(ring.takeUsed()).toEqual({ id: 0, len: 4 });
    expect(line).toEqual([true]);
    // GuestPageSize came along: after a reset, QueuePFN works without writing it again.
    moved.write(Reg.Status, 4, 0);
    moved.write(Reg.Status, 4, ACKNOWLEDGE);
    moved.write(Reg.Status, 4, ACKNOWLEDGE | DRIVER);
    moved.write(Reg.QueuePFN, 4, 0x20);
    expect(moved.read(Reg.QueuePFN, 4)).toBe(0x20);
  });

  it('refuses FEATURES_OK, which legacy drivers never write (spec 3.1.2)', () => {
    const rig = legacyRig();
    rig.write(Reg.Status, ACKNOWLEDGE);
    rig.write(Reg.Status, ACKNOWLEDGE | DRIVER);
    rig.write(Reg.Status, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    expect(rig.read(Reg.Status)).toBe(ACKNOWLEDGE | DRIVER);
    expect(rig.transport.core.violations.status).toBe(1);
  });

  it('has no version 2 registers: QueueReady, queue addresses, SHM, QueueReset and ConfigGeneration are unknown offsets', () => {
    const rig = legacyRig();
    for (const offset of [Reg.QueueReady, Reg.QueueDescLow, Reg.QueueDeviceHigh, Reg.SHMSel, Reg.QueueReset]) rig.write(offset, 1);
    for (const offset of [Reg.QueueReady, Reg.SHMLenLow, Reg.SHMBaseHigh, Reg.ConfigGeneration]) expect(rig.read(offset)).toBe(0);
    expect(rig.transport.violations.offset).toBe(9);
    expect(rig.read(Reg.Status)).toBe(0);
  });

  describe('bad queue programming', () => {
    function upToQueues(rig: LegacyRig, pageSize = PAGE_SIZE): void {
      if (pageSize !== 0) rig.write(Reg.GuestPageSize, pageSize);
      rig.write(Reg.Status, ACKNOWLEDGE);
      rig.write(Reg.Status, ACKNOWLEDGE | DRIVER);
      rig.write(Reg.QueueSel, 0);
    }

    it('GuestPageSize and QueueAlign must be powers of two: other values are ignored and counted', () => {
      const rig = legacyRig();
      upToQueues(rig);
      rig.write(Reg.GuestPageSize, 3000);
      rig.write(Reg.QueueAlign, 0);
      rig.write(Reg.QueueAlign, 100);
      expect(rig.transport.violations.value).toBe(3);
      // The earlier page size and the default 4096 alignment still apply.
      rig.write(Reg.QueueSize, 16);
      rig.write(Reg.QueuePFN, 0x10);
      expect(rig.read(Reg.QueuePFN)).toBe(0x10);
      expect(rig.transport.core.queueSlot(0)).toMatchObject({ descAddr: 0x10000, driverAddr: 0x10100, deviceAddr: 0x11000 });
    });

    it('QueueAlign places the used ring (spec 4.2.4)', () => {
      const rig = legacyRig();
      upToQueues(rig);
      rig.write(Reg.QueueSize, 16);
      rig.write(Reg.QueueAlign, 64);
      rig.write(Reg.QueuePFN, 0x10);
      // 16 descriptors (256 bytes), then 6 + 2 * 16 bytes of available ring, then the used ring at the next 64.
      expect(rig.transport.core.queueSlot(0)).toMatchObject({ descAddr: 0x10000, driverAddr: 0x10100, deviceAddr: 0x10140 });
    });

    it('QueuePFN before GuestPageSize leaves the queue off and sets DEVICE_NEEDS_RESET', () => {
      const rig = legacyRig();
      upToQueues(rig, 0);
      rig.write(Reg.QueuePFN, 0x10);
      expect(rig.read(Reg.QueuePFN)).toBe(0);
      expect(rig.read(Reg.Status) & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
      expect(rig.transport.core.needsResetReason).toMatch(/before GuestPageSize/);
    });

    it.each([
      ['outside guest memory', PAGE_SIZE, 256, 0x200],
      ['partly in the hole between regions', PAGE_SIZE, 256, 0xff],
      ['beyond 2^53 bytes', 2 ** 31, 256, 0xffffffff],
      ['with a size that is not a power of two', PAGE_SIZE, 100, 0x10],
      ['with a size above QueueSizeMax', PAGE_SIZE, 512, 0x10],
    ])('QueuePFN for a ring %s leaves the queue off and sets DEVICE_NEEDS_RESET', (_case, pageSize, num, pfn) => {
      const rig = legacyRig();
      upToQueues(rig, pageSize);
      rig.write(Reg.QueueSize, num);
      rig.write(Reg.QueuePFN, pfn);
      expect(rig.read(Reg.QueuePFN)).toBe(0);
      expect(rig.read(Reg.Status)).toBe(ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET);
    });

    it('queue registers of an absent queue, or of a queue in use, are ignored and counted', () => {
      const rig = legacyRig();
      upToQueues(rig);
      rig.write(Reg.QueueSel, 1);
      expect(rig.read(Reg.QueueSizeMax)).toBe(0);
      rig.write(Reg.QueueAlign, PAGE_SIZE);
      rig.write(Reg.QueuePFN, 0x10);
      expect(rig.read(Reg.QueuePFN)).toBe(0);
      rig.write(Reg.QueueSel, 0);
      rig.write(Reg.QueuePFN, 0x10);
      rig.write(Reg.QueueAlign, 64);
      rig.write(Reg.QueuePFN, 0x20);
      rig.write(Reg.QueueSize, 8);
      expect(rig.read(Reg.QueuePFN)).toBe(0x10);
      expect(rig.transport.core.queueSlot(0)).toMatchObject({ size: 256, descAddr: 0x10000 });
      expect(rig.transport.core.violations.queue).toBe(5);
    });
  });
});
