import { LoopbackDevice, VirtioDriver } from '@virtio-ts/driver';
import { DeviceStatus, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, featureBit, splitRingSizes, type QueueConfig } from '@virtio-ts/virtqueue';
import { GuestAllocator, SplitRingDriver, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, MmioRegister as Reg, MmioTransport } from '../src/index.js';
import { BASE, IRQ, connect, settle, testMemory, type Rig } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET } = DeviceStatus;
const VERSION_1 = featureBit(VIRTIO_F_VERSION_1);

/** Reset, ACKNOWLEDGE, DRIVER, `features`, FEATURES_OK: the point where queues are configured. */
function toFeaturesOk(rig: Rig, features = VERSION_1): void {
  rig.driver.reset();
  rig.driver.setStatus(ACKNOWLEDGE);
  rig.driver.setStatus(ACKNOWLEDGE | DRIVER);
  rig.driver.writeDriverFeatures(features);
  rig.driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
}

function ring(size: number): QueueConfig {
  return placeSplitRing(new GuestAllocator(0x1000, 1 << 20, { seed: 9 }), size);
}

describe('feature negotiation (spec 2.2, 3.1.1)', () => {
  it('ignores and counts DriverFeatures writes after FEATURES_OK', () => {
    const rig = connect();
    toFeaturesOk(rig);
    rig.driver.writeDriverFeatures(VERSION_1 | featureBit(VIRTIO_F_RING_PACKED));
    expect(rig.transport.core.driverFeatures).toBe(VERSION_1);
    expect(rig.transport.core.violations.features).toBe(4);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  });

  it.each([
    ['a feature the device did not offer', VERSION_1 | featureBit(3)],
    ['no VIRTIO_F_VERSION_1', 0n],
  ])('refuses FEATURES_OK for %s', (_case, features) => {
    const rig = connect();
    toFeaturesOk(rig, features);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER);
  });

  it('ignores and counts status writes that clear bits or skip steps', () => {
    const rig = connect();
    toFeaturesOk(rig);
    rig.driver.setStatus(ACKNOWLEDGE | DRIVER);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
    rig.driver.reset();
    rig.driver.setStatus(ACKNOWLEDGE | DRIVER_OK);
    expect(rig.driver.getStatus()).toBe(0);
    rig.driver.setStatus(ACKNOWLEDGE);
    rig.driver.setStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE);
    expect(rig.transport.core.violations.status).toBe(3);
  });

  it('ignores and counts a Status write wider than the 8-bit status field, rather than resetting on its low byte', () => {
    const rig = connect();
    toFeaturesOk(rig);
    rig.transport.write(Reg.Status, 4, 0x100);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
    expect(rig.transport.violations.value).toBe(1);
  });
});

describe('queue configuration (spec 4.2.2.2, 4.2.3.2)', () => {
  const alloc = (): GuestAllocator => new GuestAllocator(0x1000, 1 << 20, { seed: 9 });
  const sizes = splitRingSizes(16);
  const bad: [string, QueueConfig][] = [
    ['a size above QueueSizeMax', ring(512)],
    ['a split size that is not a power of two', { ...ring(16), size: 12 }],
    ['a size of 0', { ...ring(16), size: 0 }],
    ['a descriptor table in the hole between regions', { ...ring(16), descAddr: 2 << 20 }],
    ['a used ring running off the end of guest memory', { ...ring(16), deviceAddr: (5 << 20) - sizes.used + 4 }],
    ['an available ring above 4 GiB', { ...ring(16), driverAddr: 2 ** 32 + 0x1000 }],
    ['a descriptor table beyond 2^53', { ...ring(16), descAddr: 2 ** 60 }],
    ['a misaligned descriptor table', { ...ring(16), descAddr: 0x1008 }],
  ];

  it.each(bad)('QueueReady stays 0 and DEVICE_NEEDS_RESET is set for %s', (_case, config) => {
    const rig = connect();
    toFeaturesOk(rig);
    expect(rig.driver.setupQueue(0, config)).toBe(false);
    expect(rig.transport.read(Reg.QueueReady, 4)).toBe(0);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DEVICE_NEEDS_RESET);
  });

  it('accepts a packed ring whose size is not a power of two (spec 2.8)', () => {
    const rig = connect();
    toFeaturesOk(rig, VERSION_1 | featureBit(VIRTIO_F_RING_PACKED));
    expect(rig.driver.setupQueue(0, placePackedRing(alloc(), 100))).toBe(true);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  });

  it('ignores and counts queue programming while QueueReady is 1', () => {
    const rig = connect();
    toFeaturesOk(rig);
    const config = ring(16);
    expect(rig.driver.setupQueue(0, config)).toBe(true);
    for (const [offset, value] of [
      [Reg.QueueSize, 8],
      [Reg.QueueDescLow, 0x8000],
      [Reg.QueueDescHigh, 1],
      [Reg.QueueDriverLow, 0x8000],
      [Reg.QueueDeviceHigh, 1],
      [Reg.QueueReady, 1],
    ] as const) {
      rig.transport.write(offset, 4, value);
    }
    expect(rig.transport.core.queueSlot(0)).toMatchObject({ ...config, enabled: true });
    expect(rig.transport.core.violations.queue).toBe(6);
  });

  it('queue registers of a queue that does not exist read 0 and ignore writes', () => {
    const rig = connect();
    toFeaturesOk(rig);
    expect(rig.driver.queueMaxSize(1)).toBe(0);
    expect(rig.driver.setupQueue(1, ring(16))).toBe(false);
    rig.transport.write(Reg.QueueSel, 4, 0xffffffff);
    rig.transport.write(Reg.QueueSize, 4, 16);
    expect(rig.transport.read(Reg.QueueSizeMax, 4)).toBe(0);
    expect(rig.transport.read(Reg.QueueReady, 4)).toBe(0);
    expect(rig.driver.getStatus() & DEVICE_NEEDS_RESET).toBe(0);
  });

  it('ignores and counts QueueReady before FEATURES_OK: the ring layout depends on features not yet final (spec 3.1.1)', () => {
    const rig = connect();
    rig.driver.reset();
    rig.driver.setStatus(ACKNOWLEDGE);
    rig.driver.setStatus(ACKNOWLEDGE | DRIVER);
    rig.driver.writeDriverFeatures(VERSION_1 | featureBit(VIRTIO_F_RING_PACKED));
    expect(rig.driver.setupQueue(0, placePackedRing(alloc(), 12))).toBe(false);
    expect(rig.transport.core.violations.queue).toBe(1);
    expect(rig.driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER);
  });

  it('ignores and counts QueueReady values other than 0 and 1', () => {
    const rig = connect();
    toFeaturesOk(rig);
    rig.transport.write(Reg.QueueSel, 4, 0);
    rig.transport.write(Reg.QueueReady, 4, 2);
    expect(rig.transport.read(Reg.QueueReady, 4)).toBe(0);
    expect(rig.transport.violations.value).toBe(1);
  });
});

describe('a driver that never writes DRIVER_OK', () => {
  it('gets nothing: the device stays inactive, notifications are ignored and counted, no interrupt', async () => {
    const device = new LoopbackDevice();
    const rig = connect(device);
    toFeaturesOk(rig);
    const config = ring(16);
    const guest = new SplitRingDriver(rig.memory, config);
    expect(rig.driver.setupQueue(0, config)).toBe(true);
    guest.add([
      { addr: 0x90000, len: 4, writable: false },
      { addr: 0x90100, len: 4, writable: true },
    ]);
    guest.publish();
    rig.driver.notify(0);
    await settle();
    expect(guest.takeUsed()).toBeNull();
    expect(device.served).toBe(0);
    expect(rig.transport.core.violations.notify).toBe(1);
    expect(rig.line).toEqual([]);
    // A configuration change before DRIVER_OK bumps the generation but does not interrupt (spec 2.5.1, 3.1.1).
    const generation = rig.driver.configGeneration();
    rig.driver.writeConfig(4, Uint8Array.of(1, 0, 0, 0));
    expect(rig.driver.configGeneration()).toBe(generation + 1);
    expect(rig.transport.read(Reg.InterruptStatus, 4)).toBe(0);
  });
});

describe('register access rules (spec 4.2.2.2)', () => {
  it('ignores and counts unknown offsets, legacy-only registers, and offsets beyond the register block', () => {
    const rig = connect();
    const unknown = [0x018, 0x01c, 0x02c, 0x048, 0x04c, 0x054, 0x068, 0x074, 0x0a8, 0x0c4, 0x0f8, Reg.GuestPageSize, Reg.QueueAlign, Reg.QueuePFN];
    for (const offset of unknown) {
      expect(rig.transport.read(offset, 4)).toBe(0);
      rig.transport.write(offset, 4, ACKNOWLEDGE);
    }
    expect(rig.transport.read(0x200, 4)).toBe(0);
    rig.transport.write(0x1000, 4, 1);
    rig.transport.write(-4, 4, 1);
    expect(rig.transport.violations.offset).toBe(2 * unknown.length + 3);
    expect(rig.driver.getStatus()).toBe(0);
  });

  it('ignores and counts control register accesses that are not 32 bits wide and aligned', () => {
    const rig = connect();
    rig.transport.write(Reg.Status, 1, ACKNOWLEDGE);
    rig.transport.write(Reg.Status, 2, ACKNOWLEDGE);
    rig.transport.write(Reg.Status + 1, 4, ACKNOWLEDGE);
    rig.transport.write(Reg.Status, 8, ACKNOWLEDGE);
    expect(rig.transport.read(Reg.MagicValue, 1)).toBe(0);
    expect(rig.transport.read(Reg.MagicValue, 2)).toBe(0);
    expect(rig.transport.read(Reg.MagicValue + 2, 4)).toBe(0);
    expect(rig.transport.read(Reg.MagicValue, 8)).toBe(0);
    expect(rig.transport.violations.width).toBe(8);
    expect(rig.driver.getStatus()).toBe(0);
  });

  it('allows 8, 16 and 32-bit naturally aligned configuration accesses only', () => {
    const rig = connect();
    rig.transport.write(Reg.Config + 4, 4, 0x11223344);
    const valid = [
      [Reg.Config + 4, 4, 0x11223344],
      [Reg.Config + 6, 2, 0x1122],
      [Reg.Config + 5, 1, 0x33],
    ] as const;
    for (const [offset, size, value] of valid) expect(rig.transport.read(offset, size)).toBe(value);
    for (const [offset, size] of [
      [Reg.Config + 4, 8],
      [Reg.Config + 5, 2],
      [Reg.Config + 6, 4],
      [Reg.Config + 4, 3],
      [Reg.Config + 4, 0],
    ] as const) {
      expect(rig.transport.read(offset, size)).toBe(0);
      rig.transport.write(offset, size, 0xffffffff);
    }
    expect(rig.transport.violations.width).toBe(10);
    expect(rig.transport.read(Reg.Config + 4, 4)).toBe(0x11223344);
  });

  it('reads configuration beyond the device configuration space as 0, ignores writes there, and counts them', () => {
    const rig = connect();
    expect(rig.transport.read(Reg.Config + 8, 4)).toBe(0);
    rig.transport.write(Reg.Config + 0xfc, 4, 1);
    expect(rig.transport.core.violations.config).toBe(2);
  });

  it('ignores and counts writes to read-only registers and reads of write-only ones', () => {
    const rig = connect();
    toFeaturesOk(rig);
    rig.driver.setupQueue(0, ring(16));
    rig.driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    rig.driver.writeConfig(4, Uint8Array.of(1, 0, 0, 0));
    const readOnly = [Reg.MagicValue, Reg.Version, Reg.DeviceID, Reg.VendorID, Reg.DeviceFeatures, Reg.QueueSizeMax, Reg.InterruptStatus, Reg.SHMLenLow, Reg.SHMBaseHigh, Reg.ConfigGeneration];
    for (const offset of readOnly) rig.transport.write(offset, 4, 0);
    const writeOnly = [Reg.DeviceFeaturesSel, Reg.DriverFeatures, Reg.DriverFeaturesSel, Reg.QueueSel, Reg.QueueSize, Reg.QueueNotify, Reg.InterruptACK, Reg.QueueDescLow, Reg.QueueDeviceHigh, Reg.SHMSel];
    for (const offset of writeOnly) expect(rig.transport.read(offset, 4)).toBe(0);
    expect(rig.transport.violations.direction).toBe(readOnly.length + writeOnly.length);
    // Writing InterruptStatus did not clear it: only InterruptACK does.
    expect(rig.transport.read(Reg.InterruptStatus, 4)).toBe(INTERRUPT_CONFIG_CHANGE);
    expect(rig.transport.read(Reg.MagicValue, 4)).toBe(0x74726976);
  });

  it('InterruptACK clears only the bits written; undefined bits are counted', async () => {
    const rig = connect();
    await new VirtioDriver(rig.driver).init();
    rig.transport.write(Reg.Config + 4, 4, 1);
    expect(rig.transport.read(Reg.InterruptStatus, 4)).toBe(INTERRUPT_CONFIG_CHANGE);
    rig.transport.write(Reg.InterruptACK, 4, INTERRUPT_USED_BUFFER | 0x80);
    expect(rig.transport.read(Reg.InterruptStatus, 4)).toBe(INTERRUPT_CONFIG_CHANGE);
    expect(rig.transport.interruptLevel).toBe(true);
    expect(rig.transport.violations.value).toBe(1);
    rig.transport.write(Reg.InterruptACK, 4, INTERRUPT_CONFIG_CHANGE);
    expect(rig.transport.interruptLevel).toBe(false);
  });
});

describe('VMM programming errors throw at construction', () => {
  const memory = testMemory();
  const irq = { number: IRQ, set: (): void => undefined };
  it.each([
    ['a register block that is not a power of two', { size: 0x300 }, /power of two/],
    ['a register block too small for the configuration space', { size: 0x100 }, /at least 0x108/],
    ['an unaligned base address', { baseAddress: BASE + 2 }, /4-aligned/],
    ['an unknown version', { version: 3 as 1 }, /not 1 or 2/],
    ['a negative interrupt number', { irq: { number: -1, set: irq.set } }, /interrupt number/],
  ])('%s', (_case, options, message) => {
    expect(() => new MmioTransport({ device: new LoopbackDevice(), memory, baseAddress: BASE, irq, ...options })).toThrow(message);
  });
});
