import { LoopbackDevice } from '@virtio-ts/driver';
import { DeviceStatus, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, featureBit, type VirtioDevice } from '@virtio-ts/virtqueue';
import { GuestAllocator, SplitRingDriver, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { CommonCfg, PciBarIndex, PciCommand, PciConfig, type PciTransport } from '../src/index.js';
import { RamDiskDevice } from './devices/ram-disk.js';
import { bare } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET } = DeviceStatus;
const DEVICE_CFG = 0x2000;
const NOTIFY = 0x3000;

/** A function with its virtio BAR placed and memory decoding and bus mastering on, played register by register. */
function function_(device: VirtioDevice = new LoopbackDevice()) {
  const wired = bare(device);
  const { fn } = wired;
  fn.configWrite(PciConfig.BASE_ADDRESS_0 + 4 * PciBarIndex.VIRTIO, 4, 0xd000_0000);
  fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
  const read = (offset: number, size: number): number => fn.barRead(PciBarIndex.VIRTIO, offset, size);
  const write = (offset: number, size: number, value: number): void => fn.barWrite(PciBarIndex.VIRTIO, offset, size, value);
  return { ...wired, read, write };
}

/** Status sequence up to FEATURES_OK with `features` (low 64 bits). */
function negotiate(write: (offset: number, size: number, value: number) => void, features: bigint): void {
  write(CommonCfg.DEVICE_STATUS, 1, ACKNOWLEDGE);
  write(CommonCfg.DEVICE_STATUS, 1, ACKNOWLEDGE | DRIVER);
  for (const page of [0, 1]) {
    write(CommonCfg.DRIVER_FEATURE_SELECT, 4, page);
    write(CommonCfg.DRIVER_FEATURE, 4, Number((features >> BigInt(32 * page)) & 0xffffffffn));
  }
  write(CommonCfg.DEVICE_STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK);
}

function program(write: (offset: number, size: number, value: number) => void, queue: { descAddr: number; driverAddr: number; deviceAddr: number; size: number }): void {
  write(CommonCfg.QUEUE_SELECT, 2, 0);
  write(CommonCfg.QUEUE_SIZE, 2, queue.size);
  for (const [lo, value] of [
    [CommonCfg.QUEUE_DESC_LO, queue.descAddr],
    [CommonCfg.QUEUE_DRIVER_LO, queue.driverAddr],
    [CommonCfg.QUEUE_DEVICE_LO, queue.deviceAddr],
  ] as const) {
    write(lo, 4, value % 0x1_0000_0000);
    write(lo + 4, 4, Math.floor(value / 0x1_0000_0000));
  }
}

const needsReset = (fn: PciTransport): boolean => (fn.core.status & DEVICE_NEEDS_RESET) !== 0;

describe('a driver that breaks the rules (spec 3.1.1, 4.1.4.3.2)', () => {
  it('spec 3.1.1: feature writes after FEATURES_OK are ignored and counted', () => {
    const { fn, read, write } = function_();
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    expect(read(CommonCfg.DEVICE_STATUS, 1) & FEATURES_OK).toBe(FEATURES_OK);
    write(CommonCfg.DRIVER_FEATURE_SELECT, 4, 1);
    write(CommonCfg.DRIVER_FEATURE, 4, 0);
    expect(read(CommonCfg.DRIVER_FEATURE, 4)).toBe(1);
    expect(fn.core.driverFeatures).toBe(featureBit(VIRTIO_F_VERSION_1));
    expect(fn.core.violations.features).toBe(1);
  });

  it('spec 2.2.2: FEATURES_OK does not stick when the driver asks for features the device did not offer', () => {
    const { read, write } = function_();
    negotiate(write, featureBit(VIRTIO_F_VERSION_1) | featureBit(50));
    expect(read(CommonCfg.DEVICE_STATUS, 1) & FEATURES_OK).toBe(0);
  });

  it('spec 4.1.4.3.2: a queue size above the maximum is refused, keeps reading a valid size, and the device needs a reset', () => {
    const { fn, read, write } = function_();
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    write(CommonCfg.QUEUE_SELECT, 2, 0);
    write(CommonCfg.QUEUE_SIZE, 2, 512);
    expect(read(CommonCfg.QUEUE_SIZE, 2)).toBe(256);
    expect(needsReset(fn)).toBe(true);
    expect(fn.violations.write).toBe(1);
  });

  it('spec 4.1.4.3.1: a split queue size that is not a power of two is refused; a packed one is taken', () => {
    const split = function_();
    negotiate(split.write, featureBit(VIRTIO_F_VERSION_1));
    split.write(CommonCfg.QUEUE_SIZE, 2, 100);
    expect(split.read(CommonCfg.QUEUE_SIZE, 2)).toBe(256);
    expect(needsReset(split.fn)).toBe(true);
    const packed = function_();
    negotiate(packed.write, featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED));
    packed.write(CommonCfg.QUEUE_SIZE, 2, 100);
    expect(packed.read(CommonCfg.QUEUE_SIZE, 2)).toBe(100);
    packed.write(CommonCfg.QUEUE_SIZE, 2, 0);
    expect(packed.read(CommonCfg.QUEUE_SIZE, 2)).toBe(100);
    expect(needsReset(packed.fn)).toBe(true);
  });

  it('spec 2.1.2: enabling a queue whose rings lie outside guest memory fails with DEVICE_NEEDS_RESET', () => {
    const { fn, read, write } = function_();
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    program(write, { size: 256, descAddr: 0x4000_0000, driverAddr: 0x1000, deviceAddr: 0x2000 });
    write(CommonCfg.QUEUE_ENABLE, 2, 1);
    expect(read(CommonCfg.QUEUE_ENABLE, 2)).toBe(0);
    expect(needsReset(fn)).toBe(true);
    expect(fn.core.needsResetReason).toMatch(/not inside/);
  });

  it('spec 4.1.3: queue addresses at or above 2^53 read back as written halves but never enable', () => {
    const { fn, read, write } = function_();
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    write(CommonCfg.QUEUE_DESC_LO, 4, 0x1000);
    write(CommonCfg.QUEUE_DESC_HI, 4, 0x8000_0000);
    expect(read(CommonCfg.QUEUE_DESC_HI, 4)).toBe(0x8000_0000);
    write(CommonCfg.QUEUE_DRIVER_LO, 4, 0x3000);
    write(CommonCfg.QUEUE_DEVICE_LO, 4, 0x4000);
    write(CommonCfg.QUEUE_ENABLE, 2, 1);
    expect(read(CommonCfg.QUEUE_ENABLE, 2)).toBe(0);
    expect(needsReset(fn)).toBe(true);
  });

  it('spec 4.1.3.1: the halves of a 64-bit field are written and read independently', () => {
    const { read, write } = function_();
    write(CommonCfg.QUEUE_DEVICE_HI, 4, 0x12);
    write(CommonCfg.QUEUE_DEVICE_LO, 4, 0x3456_7000);
    expect(read(CommonCfg.QUEUE_DEVICE_LO, 4)).toBe(0x3456_7000);
    expect(read(CommonCfg.QUEUE_DEVICE_HI, 4)).toBe(0x12);
    write(CommonCfg.QUEUE_DEVICE_LO, 4, 0);
    expect(read(CommonCfg.QUEUE_DEVICE_HI, 4)).toBe(0x12);
  });

  it('spec 4.1.3.1: accesses of the wrong width and to no register read 0, change nothing, and are counted', () => {
    const { fn, read, write } = function_();
    write(CommonCfg.DEVICE_STATUS, 4, ACKNOWLEDGE);
    write(CommonCfg.DEVICE_STATUS, 2, ACKNOWLEDGE);
    expect(fn.core.status).toBe(0);
    expect(read(CommonCfg.NUM_QUEUES, 4)).toBe(0);
    expect(read(CommonCfg.DEVICE_FEATURE, 2)).toBe(0);
    expect(read(CommonCfg.QUEUE_DESC_LO + 1, 1)).toBe(0);
    expect(read(0x40, 4)).toBe(0);
    expect(read(0x800, 2)).toBe(0);
    write(0x7fc, 4, 0xffffffff);
    expect(read(NOTIFY, 2)).toBe(0);
    write(NOTIFY, 1, 0);
    expect(read(0x1004, 4)).toBe(0);
    expect(fn.violations.access).toBe(11);
    expect(fn.violations.write).toBe(0);
    // Device configuration: inside the page but past the 8 bytes the device has.
    expect(read(DEVICE_CFG + 8, 4)).toBe(0);
    expect(fn.core.violations.config).toBe(1);
  });

  it('spec 4.1.4.3.2: writes to read-only fields are ignored and counted', () => {
    const { fn, read, write } = function_();
    const generation = read(CommonCfg.CONFIG_GENERATION, 1);
    write(CommonCfg.NUM_QUEUES, 2, 9);
    write(CommonCfg.DEVICE_FEATURE, 4, 0);
    write(CommonCfg.CONFIG_GENERATION, 1, generation + 1);
    write(CommonCfg.QUEUE_NOTIFY_OFF, 2, 5);
    write(CommonCfg.QUEUE_NOTIF_CONFIG_DATA, 2, 5);
    write(0x1000, 1, 0xff);
    expect(read(CommonCfg.NUM_QUEUES, 2)).toBe(1);
    expect(read(CommonCfg.CONFIG_GENERATION, 1)).toBe(generation);
    expect(read(CommonCfg.QUEUE_NOTIFY_OFF, 2)).toBe(0);
    expect(fn.violations.write).toBe(6);
  });

  it('spec 4.1.4.3.2: queue_enable 0, queue_reset without VIRTIO_F_RING_RESET, and a non-existent queue are refused', () => {
    const { fn, read, write } = function_(new RamDiskDevice());
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    write(CommonCfg.QUEUE_ENABLE, 2, 0);
    write(CommonCfg.QUEUE_RESET, 2, 1);
    write(CommonCfg.QUEUE_SELECT, 2, 7);
    expect(read(CommonCfg.QUEUE_SIZE, 2)).toBe(0);
    expect(read(CommonCfg.QUEUE_ENABLE, 2)).toBe(0);
    write(CommonCfg.QUEUE_SIZE, 2, 8);
    write(CommonCfg.QUEUE_MSIX_VECTOR, 2, 0);
    expect(fn.violations.write).toBe(4);
    expect(needsReset(fn)).toBe(false);
  });

  it('spec 3.1.1: a driver that never writes DRIVER_OK gets no service; its notifications are counted', () => {
    const device = new LoopbackDevice();
    const { fn, memory, read, write } = function_(device);
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    const config = placeSplitRing(new GuestAllocator(0x10_0000, 1 << 21), 16);
    const ring = new SplitRingDriver(memory, config);
    program(write, config);
    write(CommonCfg.QUEUE_ENABLE, 2, 1);
    expect(read(CommonCfg.QUEUE_ENABLE, 2)).toBe(1);
    ring.add([
      { addr: 0x18_0000, len: 4, writable: false },
      { addr: 0x18_1000, len: 4, writable: true },
    ]);
    ring.publish();
    write(NOTIFY, 2, 0);
    expect(device.served).toBe(0);
    expect(fn.core.violations.notify).toBe(1);
    // Queue configuration is locked once the queue is enabled.
    write(CommonCfg.QUEUE_SIZE, 2, 8);
    expect(read(CommonCfg.QUEUE_SIZE, 2)).toBe(16);
    write(CommonCfg.DEVICE_STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    write(NOTIFY, 2, 0);
    expect(device.served).toBe(1);
    expect(ring.takeUsed()?.len).toBe(4);
  });

  it('notifications while bus mastering is off are ignored and counted: the function does no DMA', () => {
    const device = new LoopbackDevice();
    const { fn, memory, write } = function_(device);
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    const config = placeSplitRing(new GuestAllocator(0x10_0000, 1 << 21), 16);
    const ring = new SplitRingDriver(memory, config);
    program(write, config);
    write(CommonCfg.QUEUE_ENABLE, 2, 1);
    write(CommonCfg.DEVICE_STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    ring.add([
      { addr: 0x18_0000, len: 4, writable: false },
      { addr: 0x18_1000, len: 4, writable: true },
    ]);
    ring.publish();
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY);
    write(NOTIFY, 2, 0);
    fn.notify(0);
    expect(device.served).toBe(0);
    expect(fn.violations.dma).toBe(2);
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
    write(NOTIFY, 2, 0);
    expect(device.served).toBe(1);
  });

  it('spec 4.1.5.2: notifications of absent queues, at misaligned offsets, or 8 bits wide are refused', () => {
    const { fn, write } = function_();
    negotiate(write, featureBit(VIRTIO_F_VERSION_1));
    write(CommonCfg.DEVICE_STATUS, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    write(NOTIFY + 2, 2, 0);
    write(NOTIFY, 1, 0);
    write(NOTIFY + 0xffc, 4, 0);
    expect(fn.violations.access).toBe(3);
    write(NOTIFY, 2, 0);
    expect(fn.core.violations.notify).toBe(1);
  });

  it('spec 4.1.4.9: the configuration access window refuses misaligned, oversized and non-virtio targets', () => {
    const { fn } = function_();
    let cap = fn.configRead(PciConfig.CAPABILITY_LIST, 1);
    while (fn.configRead(cap + 3, 1) !== 5) cap = fn.configRead(cap + 1, 1);
    const aim = (bar: number, offset: number, length: number): number => {
      fn.configWrite(cap + 4, 1, bar);
      fn.configWrite(cap + 8, 4, offset);
      fn.configWrite(cap + 12, 4, length);
      return fn.configRead(cap + 16, 4);
    };
    expect(aim(PciBarIndex.VIRTIO, CommonCfg.NUM_QUEUES, 2) & 0xffff).toBe(1);
    const before = fn.violations.access;
    aim(PciBarIndex.VIRTIO, CommonCfg.NUM_QUEUES + 1, 2);
    aim(PciBarIndex.VIRTIO, 0, 3);
    aim(PciBarIndex.MSIX, 0, 4);
    aim(9, 0, 4);
    aim(PciBarIndex.VIRTIO, 0xffff_fffc, 4);
    expect(fn.violations.access).toBe(before + 5);
  });
});
