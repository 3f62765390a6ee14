import { LoopbackDevice, VirtioDriver } from '@virtio-ts/driver';
import { describe, expect, it } from 'vitest';
import { PciBarIndex } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { RamDiskDevice } from './devices/ram-disk.js';
import { wire } from './harness.js';

const encoder = new TextEncoder();
const VIRTIO_NET_F_MAC = 1n << 5n;
const VIRTIO_NET_F_STATUS = 1n << 16n;
const VIRTIO_BLK_T_FLUSH = 4;
const VIRTIO_BLK_T_GET_ID = 8;

/** A virtio-blk request header (spec 5.2.6). */
function blkHeader(type: number): Uint8Array {
  const header = new Uint8Array(16);
  new DataView(header.buffer).setUint32(0, type, true);
  return header;
}

describe.each([{ layout: 'split', packed: false }, { layout: 'packed', packed: true }])('the loopback device over PCI, $layout ring', ({ packed }) => {
  it.each(['msix', 'intx'] as const)('spec 3.1.1, 4.1.5: VirtioDriver initialises it and its requests come back, with %s interrupts', async (interrupts) => {
    const device = new LoopbackDevice();
    const { fn, driver, messages, intx } = wire(device, {}, { interrupts });
    const virtio = new VirtioDriver(driver);
    await virtio.init({ packed, eventIdx: true, indirect: true });
    expect(fn.core.driverOk).toBe(true);
    for (let i = 0; i < 5; i++) {
      const payload = encoder.encode(`request ${i} over PCI`);
      const result = await virtio.queue(0).request([payload], [64]);
      expect(result.len).toBe(payload.length);
      expect(result.data).toEqual(payload);
    }
    expect(device.served).toBe(5);
    if (interrupts === 'msix') {
      // Queue 0 has its own vector (1), so the driver knows which queue it was.
      expect(virtio.interrupts.queue.get(0)).toBeGreaterThanOrEqual(1);
      expect(virtio.interrupts.unattributed).toBe(0);
      expect(messages.length).toBeGreaterThanOrEqual(1);
      expect(messages.every((m) => m.address === 0xfee0_0000 && m.data === 1)).toBe(true);
      expect(intx).toEqual([]);
    } else {
      expect(virtio.interrupts.unattributed).toBeGreaterThanOrEqual(1);
      expect(messages).toEqual([]);
      // Each interrupt raised the line and the handler's ISR read lowered it again.
      expect(intx.length).toBeGreaterThanOrEqual(2);
      expect(intx.at(-1)).toBe(false);
    }
    expect(virtio.deviceErrors).toEqual([]);
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
    expect(fn.core.violations).toEqual({ status: 0, features: 0, config: 0, notify: 0, queue: 0 });
  });

  it('spec 4.1.4.9: the same works with every register access through the PCI configuration access window', async () => {
    const { fn, driver } = wire(new LoopbackDevice(), {}, { access: 'pci-cfg', interrupts: 'intx' });
    const virtio = new VirtioDriver(driver);
    await virtio.init({ packed });
    const result = await virtio.queue(0).request([new Uint8Array([1, 2, 3])], [8]);
    expect(result.data).toEqual(new Uint8Array([1, 2, 3]));
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
  });

  it.each(['msix', 'intx'] as const)('spec 4.1.5.4: a configuration change reaches the driver (%s) and moves config_generation', async (interrupts) => {
    const { driver } = wire(new LoopbackDevice(), {}, { interrupts });
    const virtio = new VirtioDriver(driver);
    await virtio.init({ packed });
    const before = driver.configGeneration();
    virtio.writeConfigU32(4, 7);
    expect(virtio.interrupts.config).toBe(1);
    expect(driver.configGeneration()).not.toBe(before);
    expect(virtio.readConfigU32(4)).toBe(7);
  });
});

describe('devices with more queues and features', () => {
  /** Posts a receive buffer, transmits a frame, and returns what arrived. */
  async function echo(virtio: VirtioDriver, frame: Uint8Array): Promise<number> {
    const rx = virtio.queue(0);
    rx.add([{ addr: virtio.allocate(1526), len: 1526, writable: true }]);
    rx.kick();
    const sent = await virtio.queue(1).request([frame], []);
    expect(sent.len).toBe(0);
    const received = await rx.waitUsed();
    expect(received).toHaveLength(1);
    return received[0]?.len ?? -1;
  }

  it('spec 4.1.5.1.2: a two-queue net device gets a vector per queue; each completion interrupts its own queue', async () => {
    const device = new NetEchoDevice();
    const { fn, driver, messages } = wire(device);
    const virtio = new VirtioDriver(driver);
    await virtio.init({ features: VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS });
    expect(Array.from(virtio.readConfig(0, 6))).toEqual([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    expect(await echo(virtio, new Uint8Array(12 + 60).fill(0xab))).toBe(72);
    expect(new Set(messages.map((m) => m.data))).toEqual(new Set([1, 2]));
    expect(virtio.interrupts.queue.get(0)).toBeGreaterThanOrEqual(1);
    expect(virtio.interrupts.queue.get(1)).toBeGreaterThanOrEqual(1);
    // Link down: a configuration change on vector 0 (spec 4.1.5.4, 5.1.4).
    device.setLink(false);
    expect(messages.at(-1)?.data).toBe(0);
    expect(virtio.readConfigU16(6)).toBe(0);
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
  });

  it('spec 4.1.5.1.2: with a table too small for a vector per queue, the queues share one and the driver polls them all', async () => {
    const { driver, messages } = wire(new NetEchoDevice(), { msixVectors: 2 });
    const virtio = new VirtioDriver(driver);
    await virtio.init();
    expect(await echo(virtio, new Uint8Array(20))).toBe(20);
    expect(messages.length).toBeGreaterThanOrEqual(1);
    expect(messages.every((m) => m.data === 1)).toBe(true);
    expect(virtio.interrupts.unattributed).toBe(messages.length);
  });

  it('spec 2.9, 4.1.5.2: with VIRTIO_F_NOTIFICATION_DATA the driver writes 32 bits and the queue sees the data', async () => {
    const { fn, driver } = wire(new RamDiskDevice());
    const virtio = new VirtioDriver(driver);
    await virtio.init({ notificationData: true });
    const result = await virtio.queue(0).request([blkHeader(VIRTIO_BLK_T_GET_ID)], [20, 1]);
    expect(result.len).toBe(21);
    expect(new TextDecoder().decode(result.data.subarray(0, 17))).toBe('virtio-ts-ramdisk');
    expect(result.data[20]).toBe(0);
    // The last notification carried queue 0 and the next available index, 1 (spec 2.9).
    expect(fn.core.queueSlot(0)?.queue?.notificationData).toBe(1 << 16);
  });

  it('spec 2.6.1, 4.1.4.3: VIRTIO_F_RING_RESET resets one queue through queue_reset, and it serves again once re-enabled', async () => {
    const { fn, driver } = wire(new RamDiskDevice());
    const virtio = new VirtioDriver(driver);
    await virtio.init({ ringReset: true, packed: true });
    await virtio.resetQueue(0);
    expect(fn.core.queueSlot(0)?.enabled).toBe(false);
    expect(fn.core.driverOk).toBe(true);
    virtio.enableQueue(0);
    const result = await virtio.queue(0).request([blkHeader(VIRTIO_BLK_T_FLUSH)], [1]);
    expect(result.data).toEqual(new Uint8Array([0]));
    expect(fn.bars.find((b) => b.index === PciBarIndex.VIRTIO)?.address).toBeDefined();
  });
});
