import { LoopbackDevice } from '@virtio-ts/driver';
import { DeviceStatus, VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, featureBit } from '@virtio-ts/virtqueue';
import { PackedRingDriver } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { PciBarIndex } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { RamDiskDevice } from './devices/ram-disk.js';
import { bringUp, request, submit } from './guest.js';
import { wire } from './harness.js';

const ALL = (1n << 128n) - 1n;
const layouts = [
  { name: 'split', features: ALL & ~featureBit(VIRTIO_F_RING_PACKED) },
  { name: 'packed', features: ALL },
] as const;

describe.each(layouts)('loopback device over PCI, $name ring', ({ features }) => {
  it.each(['msix', 'intx'] as const)('spec 3.1.1, 4.1.5: initialises and serves requests with %s interrupts', (interrupts) => {
    const device = new LoopbackDevice();
    const { memory, fn, driver, messages, intx } = wire(device, {}, { interrupts });
    const guest = bringUp(driver, memory, features);
    expect(fn.core.driverOk).toBe(true);
    expect(guest.features & featureBit(VIRTIO_F_VERSION_1)).not.toBe(0n);
    const queue = guest.queues[0];
    if (queue === undefined) throw new Error('no queue');
    for (let i = 0; i < 5; i++) {
      const payload = new TextEncoder().encode(`request ${i} over PCI`);
      const { id, response } = request(guest, queue, payload, 64);
      const used = queue.ring.takeUsed();
      expect(used).toEqual({ id, len: payload.length });
      const echoed = new Uint8Array(payload.length);
      memory.read(response, echoed);
      expect(echoed).toEqual(payload);
    }
    expect(device.served).toBe(5);
    expect(guest.interrupts.filter((c) => c.kind === 'queue').length).toBeGreaterThanOrEqual(1);
    if (interrupts === 'msix') {
      // Queue 0 has its own vector (1), so the driver knows which queue it was.
      expect(guest.interrupts).toContainEqual({ kind: 'queue', index: 0 });
      expect(messages.every((m) => m.address === 0xfee0_0000 && m.data === 1)).toBe(true);
      expect(intx).toEqual([]);
    } else {
      expect(guest.interrupts).toContainEqual({ kind: 'queue', index: undefined });
      expect(messages).toEqual([]);
      // Each interrupt raised the line and the ISR read in the handler lowered it again.
      expect(intx.length).toBeGreaterThanOrEqual(2);
      expect(intx.at(-1)).toBe(false);
    }
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
    expect(fn.core.violations).toEqual({ status: 0, features: 0, config: 0, notify: 0, queue: 0 });
  });

  it('spec 4.1.4.9: the same sequence works entirely through the PCI configuration access window', () => {
    const device = new LoopbackDevice();
    const { memory, fn, driver } = wire(device, {}, { access: 'pci-cfg', interrupts: 'intx' });
    const guest = bringUp(driver, memory, features);
    const queue = guest.queues[0];
    if (queue === undefined) throw new Error('no queue');
    const { id } = request(guest, queue, new Uint8Array([1, 2, 3]), 8);
    expect(queue.ring.takeUsed()).toEqual({ id, len: 3 });
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
  });

  it('spec 4.1.5.4: a configuration change reaches the driver as its own MSI-X vector, or as ISR bit 1 over INTx', () => {
    for (const interrupts of ['msix', 'intx'] as const) {
      const { memory, driver } = wire(new LoopbackDevice(), {}, { interrupts });
      const guest = bringUp(driver, memory, features);
      const before = driver.configGeneration();
      driver.writeConfig(4, new Uint8Array([7, 0, 0, 0]));
      expect(guest.interrupts).toEqual([{ kind: 'config' }]);
      expect(driver.configGeneration()).not.toBe(before);
      expect(driver.readConfig(4, 4)).toEqual(new Uint8Array([7, 0, 0, 0]));
    }
  });
});

describe('devices with more queues and features', () => {
  it('spec 4.1.5.1.2: a two-queue net device gets a vector per queue; each completion interrupts its own queue', () => {
    const device = new NetEchoDevice();
    const { memory, fn, driver, messages } = wire(device);
    const guest = bringUp(driver, memory, ALL);
    const [rx, tx] = guest.queues;
    if (rx === undefined || tx === undefined) throw new Error('net device has two queues');
    const buffer = guest.allocator.alloc(1526, 8);
    submit(guest, rx, [{ addr: buffer, len: 1526, writable: true }]);
    const frame = new Uint8Array(12 + 60).fill(0xab);
    const packet = guest.allocator.alloc(frame.length, 8);
    memory.write(packet, frame);
    submit(guest, tx, [{ addr: packet, len: frame.length, writable: false }]);
    expect(rx.ring.takeUsed()?.len).toBe(frame.length);
    expect(tx.ring.takeUsed()?.len).toBe(0);
    expect(new Set(messages.map((m) => m.data))).toEqual(new Set([1, 2]));
    expect(guest.interrupts).toEqual(expect.arrayContaining([{ kind: 'queue', index: 0 }, { kind: 'queue', index: 1 }]));
    // Link down: a configuration change on vector 0 (spec 4.1.5.4).
    device.setLink(false);
    expect(messages.at(-1)?.data).toBe(0);
    expect(driver.readConfig(6, 2)).toEqual(new Uint8Array([0, 0]));
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
  });

  it('spec 4.1.5.1.2: with a table too small for a vector per queue, queues share one and the driver polls them all', () => {
    const { memory, driver, messages } = wire(new NetEchoDevice(), { msixVectors: 2 });
    const guest = bringUp(driver, memory, ALL);
    const [rx, tx] = guest.queues;
    if (rx === undefined || tx === undefined) throw new Error('net device has two queues');
    submit(guest, rx, [{ addr: guest.allocator.alloc(100, 8), len: 100, writable: true }]);
    const packet = guest.allocator.alloc(20, 8);
    submit(guest, tx, [{ addr: packet, len: 20, writable: false }]);
    // rx and tx each signalled their (shared) vector once.
    expect(messages.map((m) => m.data)).toEqual([1, 1]);
    expect(guest.interrupts).toEqual([
      { kind: 'queue', index: undefined },
      { kind: 'queue', index: undefined },
    ]);
    expect(rx.ring.takeUsed()?.len).toBe(20);
  });

  it('spec 2.9, 4.1.5.2: with VIRTIO_F_NOTIFICATION_DATA the driver writes 32 bits and the queue sees the data', () => {
    const device = new RamDiskDevice();
    const { memory, fn, driver } = wire(device);
    const guest = bringUp(driver, memory, ALL & ~featureBit(VIRTIO_F_RING_PACKED));
    expect(guest.features & featureBit(VIRTIO_F_NOTIFICATION_DATA)).not.toBe(0n);
    const queue = guest.queues[0];
    if (queue === undefined) throw new Error('no queue');
    const header = new Uint8Array(16);
    new DataView(header.buffer).setUint32(0, 8, true); // VIRTIO_BLK_T_GET_ID
    const { id, response } = request(guest, queue, header, 21);
    expect(queue.ring.takeUsed()).toEqual({ id, len: 21 });
    expect(new TextDecoder().decode(memory.slice(response, 17))).toBe('virtio-ts-ramdisk');
    expect(memory.getU8(response + 20)).toBe(0);
    // The last notification carried queue 0 and avail idx 1 (spec 2.9).
    expect(fn.core.queueSlot(0)?.queue?.notificationData).toBe(1 << 16);
  });

  it('spec 2.6.1, 4.1.4.3: VIRTIO_F_RING_RESET resets one queue through queue_reset and it can be enabled again', () => {
    const device = new RamDiskDevice();
    const { memory, fn, driver } = wire(device);
    const guest = bringUp(driver, memory, ALL);
    driver.resetQueue(0);
    expect(fn.core.queueSlot(0)?.enabled).toBe(false);
    expect(fn.core.status & DeviceStatus.DRIVER_OK).not.toBe(0);
    const queue = guest.queues[0];
    if (queue === undefined) throw new Error('no queue');
    // The driver starts the re-enabled queue from a fresh ring (spec 2.6.1).
    const fresh = { ...queue, ring: new PackedRingDriver(memory, queue.config) };
    expect(driver.setupQueue(0, queue.config)).toBe(true);
    const header = new Uint8Array(16);
    new DataView(header.buffer).setUint32(0, 4, true); // VIRTIO_BLK_T_FLUSH
    const { id } = request(guest, fresh, header, 1);
    expect(fresh.ring.takeUsed()).toEqual({ id, len: 1 });
    expect(fn.bars.find((b) => b.index === PciBarIndex.VIRTIO)?.address).toBeDefined();
  });
});
