import { VirtioDriver, legacyPciQueueLayout, type PciLegacyDriverTransport } from '@virtio-ts/driver';
import { DeviceStatus, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, featureBit, hasFeature } from '@virtio-ts/virtqueue';
import { SplitRingDriver } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { LegacyIo, PciBarIndex } from '../src/index.js';
import { RamDiskDevice } from './devices/ram-disk.js';
import { wire, wireLegacy, type Wired } from './harness.js';

const { ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK } = DeviceStatus;
const QUEUE_BASE = 0x20_0000;

/** The legacy driver's initialisation (virtio 0.9.5): no FEATURES_OK, the queue placed by page frame number. */
function legacyBringUp({ driver, memory }: Wired<PciLegacyDriverTransport>) {
  const interrupts: unknown[] = [];
  driver.onInterrupt((cause) => interrupts.push(cause));
  driver.reset();
  driver.setStatus(ACKNOWLEDGE);
  driver.setStatus(ACKNOWLEDGE | DRIVER);
  const features = driver.readDeviceFeatures() & featureBit(VIRTIO_F_EVENT_IDX);
  driver.writeDriverFeatures(features);
  const config = legacyPciQueueLayout(QUEUE_BASE, driver.queueMaxSize(0));
  const ring = new SplitRingDriver(memory, config, { eventIdx: hasFeature(features, VIRTIO_F_EVENT_IDX) });
  expect(driver.setupQueue(0, config)).toBe(true);
  driver.setStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
  return { ring, interrupts, features };
}

/** A virtio-blk request: header, then data, then the status byte. */
function blk(wired: Wired<PciLegacyDriverTransport>, ring: SplitRingDriver, type: number, sector: number, data: Uint8Array | number): Uint8Array {
  const { memory, driver } = wired;
  const header = 0x40_0000;
  memory.setU32(header, type);
  memory.setU32(header + 4, 0);
  memory.setU64(header + 8, BigInt(sector));
  const buffer = 0x40_1000;
  const length = typeof data === 'number' ? data : data.length;
  if (typeof data !== 'number') memory.write(buffer, data);
  const status = 0x40_3000;
  ring.add([
    { addr: header, len: 16, writable: false },
    { addr: buffer, len: length, writable: typeof data === 'number' },
    { addr: status, len: 1, writable: true },
  ]);
  ring.publish();
  if (ring.kickNeeded()) driver.notify(0);
  expect(ring.takeUsed()).not.toBeNull();
  expect(memory.getU8(status)).toBe(0);
  return memory.slice(buffer, length)?.slice() ?? new Uint8Array();
}

describe.each(['intx', 'msix'] as const)('a legacy (0.9.5) driver on a transitional device, %s (spec 4.1.4.10)', (interrupts) => {
  it('initialises through the I/O BAR and reads and writes the disk', () => {
    const device = new RamDiskDevice();
    const wired = wireLegacy(device, {}, { interrupts });
    const { fn, driver } = wired;
    const { ring, interrupts: seen, features } = legacyBringUp(wired);
    expect(fn.core.legacy).toBe(true);
    expect(fn.core.driverOk).toBe(true);
    // Only feature bits 0-31 exist for a legacy driver: VERSION_1 is invisible.
    expect(hasFeature(driver.readDeviceFeatures(), VIRTIO_F_VERSION_1)).toBe(false);
    expect(fn.core.driverFeatures).toBe(features);
    // The queue is where the page frame number says, in the legacy layout: 2 KiB of descriptors, the
    // available ring, the used ring on the next page (spec 2.7.2).
    expect(fn.core.queueSlot(0)).toMatchObject({ size: 128, descAddr: QUEUE_BASE, driverAddr: QUEUE_BASE + 0x800, deviceAddr: QUEUE_BASE + 0x1000 });
    const sector = new Uint8Array(512).map((_, i) => i & 0xff);
    blk(wired, ring, 1, 3, sector);
    expect(device.disk.subarray(3 * 512, 4 * 512)).toEqual(sector);
    expect(blk(wired, ring, 0, 3, 512)).toEqual(sector);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    // Device configuration follows the header: at 24 with MSI-X enabled, else at 20 (capacity: 64 sectors).
    expect(new DataView(driver.readConfig(0, 8).buffer).getBigUint64(0, true)).toBe(64n);
    const port = fn.bars[0]?.address as number;
    expect(fn.ioRead(port + (interrupts === 'msix' ? 24 : 20), 4)).toBe(64);
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
    expect(fn.core.violations).toEqual({ status: 0, features: 0, config: 0, notify: 0, queue: 0 });
  });
});

describe('VirtioDriver as a legacy driver', () => {
  it.each(['intx', 'msix'] as const)('init({ legacy: true }) brings the device up through the I/O BAR and it serves a read (%s, spec 3.1.2)', async (interrupts) => {
    const device = new RamDiskDevice();
    device.disk.fill(0x5a, 2 * 512, 3 * 512);
    const { fn, driver } = wireLegacy(device, {}, { interrupts });
    const virtio = new VirtioDriver(driver);
    const features = await virtio.init({ legacy: true, eventIdx: true });
    expect(features).toBe(featureBit(VIRTIO_F_EVENT_IDX));
    expect(fn.core.legacy).toBe(true);
    expect(fn.core.status).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    const header = new Uint8Array(16);
    new DataView(header.buffer).setBigUint64(8, 2n, true);
    const result = await virtio.queue(0).request([header], [512, 1]);
    expect(result.data.subarray(0, 512)).toEqual(new Uint8Array(512).fill(0x5a));
    expect(result.data[512]).toBe(0);
    expect(fn.core.violations).toEqual({ status: 0, features: 0, config: 0, notify: 0, queue: 0 });
    await virtio.reset();
    expect(fn.core.status).toBe(0);
  });
});

describe('legacy interface rules', () => {
  it('a legacy driver cannot set FEATURES_OK, and a second page frame number for an active queue is refused', () => {
    const wired = wireLegacy(new RamDiskDevice(), {}, { interrupts: 'intx' });
    const { fn, driver } = wired;
    driver.reset();
    driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
    expect(fn.core.status).toBe(0);
    expect(fn.core.violations.status).toBe(1);
    legacyBringUp(wired);
    const port = fn.bars[0]?.address as number;
    fn.ioWrite(port + LegacyIo.QUEUE_PFN, 4, 0x300);
    expect(fn.ioRead(port + LegacyIo.QUEUE_PFN, 4)).toBe(QUEUE_BASE / 4096);
    expect(fn.violations.write).toBe(1);
    // Queue Address 0 deactivates the queue.
    driver.resetQueue(0);
    expect(fn.core.queueSlot(0)?.enabled).toBe(false);
    expect(fn.ioRead(port + LegacyIo.QUEUE_PFN, 4)).toBe(0);
  });

  it("spec 2.4: a reset the device finishes later through the legacy interface holds the vCPU, as Linux's legacy driver does not poll", async () => {
    // A ram disk (a transitional type) whose reset finishes only when the test says.
    let finish: () => void = () => undefined;
    const device = new (class extends RamDiskDevice {
      override reset(): Promise<void> {
        super.reset();
        return new Promise((resolve) => (finish = resolve));
      }
    })();
    const wired = wireLegacy(device, {}, { interrupts: 'intx' });
    const { fn, driver } = wired;
    legacyBringUp(wired);
    const resetting = driver.reset();
    const held = fn.pendingCompletion;
    expect(held).toBeInstanceOf(Promise);
    expect(resetting).toBeInstanceOf(Promise);
    expect(fn.ioRead((fn.bars[0]?.address as number) + LegacyIo.STATUS, 1)).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    finish();
    await resetting;
    expect(fn.pendingCompletion).toBeUndefined();
    expect(driver.getStatus()).toBe(0);
  });

  it('the legacy header refuses wrong widths and read-only writes, and has no vector registers without MSI-X', () => {
    const { fn } = wireLegacy(new RamDiskDevice(), {}, { interrupts: 'intx' });
    const port = fn.bars[0]?.address as number;
    expect(fn.ioRead(port + LegacyIo.STATUS, 2)).toBe(0);
    fn.ioWrite(port + LegacyIo.HOST_FEATURES, 4, 0);
    fn.ioWrite(port + LegacyIo.QUEUE_NUM, 2, 4);
    expect(fn.ioRead(port + LegacyIo.QUEUE_NUM, 2)).toBe(128);
    expect(fn.violations).toMatchObject({ access: 1, write: 2 });
    // Without MSI-X, offset 20 is device configuration (the capacity), not config_msix_vector.
    expect(fn.ioRead(port + 20, 2)).toBe(64);
  });

  it('a modern driver that resets the device after a legacy one drives it as a modern device again', async () => {
    const device = new RamDiskDevice();
    const legacy = wireLegacy(device, {}, { interrupts: 'intx' });
    legacyBringUp(legacy);
    expect(legacy.fn.core.legacy).toBe(true);
    const modern = wire(device, { transitional: true });
    const virtio = new VirtioDriver(modern.driver);
    await virtio.init();
    expect(modern.fn.core.legacy).toBe(false);
    expect(hasFeature(virtio.features, VIRTIO_F_VERSION_1)).toBe(true);
    expect(modern.fn.bars.map((b) => b.index)).toEqual([PciBarIndex.LEGACY, PciBarIndex.MSIX, PciBarIndex.VIRTIO]);
  });
});
