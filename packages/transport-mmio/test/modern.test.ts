import { LoopbackDevice, MmioDriverTransport, VirtioDriver, type DriverQueue } from '@virtio-ts/driver';
import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
} from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, MMIO_MAGIC_VALUE, MmioRegister, MmioTransport } from '../src/index.js';
import { BASE, IRQ, connect, settle, testMemory } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK } = DeviceStatus;
const LIVE = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
const WITH_NOTIFICATION_DATA =
  featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_EVENT_IDX) | featureBit(VIRTIO_F_NOTIFICATION_DATA);

/** Puts "ping" and 8 writable bytes on the queue without kicking; returns where the device will write. */
function addPing(guest: VirtioDriver, queue: DriverQueue): number {
  const out = guest.allocate(4);
  guest.memory.write(out, new TextEncoder().encode('ping'));
  const back = guest.allocate(8);
  queue.add([
    { addr: out, len: 4, writable: false },
    { addr: back, len: 8, writable: true },
  ]);
  return back;
}

function text(guest: VirtioDriver, addr: number): string {
  return new TextDecoder().decode(guest.memory.slice(addr, 4));
}

describe.each([false, true])('MMIO version 2 (packed ring: %s)', (packed) => {
  it('spec 4.2.3.1: identifies as virtio-mmio version 2 carrying the device', () => {
    const { transport } = connect();
    expect(transport.read(MmioRegister.MagicValue, 4)).toBe(MMIO_MAGIC_VALUE);
    expect(transport.read(MmioRegister.Version, 4)).toBe(2);
    expect(transport.read(MmioRegister.DeviceID, 4)).toBe(new LoopbackDevice().deviceType);
    expect(transport.read(MmioRegister.VendorID, 4)).toBe(0);
  });

  it('spec 3.1.1, 4.2.3.2-4.2.3.4: initialises, serves a request, and interrupts on a level line the driver acknowledges', async () => {
    const rig = connect();
    const guest = new VirtioDriver(rig.driver);
    const features = await guest.init({ packed, eventIdx: true });
    expect(hasFeature(features, VIRTIO_F_RING_PACKED)).toBe(packed);
    expect(guest.status).toBe(LIVE);
    const queue = guest.queue(0);
    const back = addPing(guest, queue);
    expect(queue.kick()).toBe(true);
    // The device used the buffer and asserted the line within the QueueNotify write ...
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(INTERRUPT_USED_BUFFER);
    expect(rig.transport.interruptLevel).toBe(true);
    expect(guest.interrupts.total).toBe(0);
    // ... and the driver took the interrupt after it, acknowledged it, and the line dropped.
    const used = await queue.waitUsed();
    expect(used).toMatchObject([{ len: 4 }]);
    expect(text(guest, back)).toBe('ping');
    expect(guest.interrupts).toMatchObject({ total: 1, unattributed: 1, config: 0 });
    expect(rig.line).toEqual([true, false]);
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(0);
    expect(guest.deviceErrors).toEqual([]);
  });

  it('spec 2.5.1, 4.2.2: configuration reads and writes at 0x100 in 8/16/32-bit accesses, with a configuration change interrupt', async () => {
    const rig = connect();
    const guest = new VirtioDriver(rig.driver);
    await guest.init({ packed });
    const result = await guest.queue(0).request([new TextEncoder().encode('ping')], [8]);
    expect(result.len).toBe(4);
    expect(guest.readConfigU32(0)).toBe(1);
    expect(rig.transport.read(MmioRegister.Config, 1)).toBe(1);
    expect(rig.transport.read(MmioRegister.Config, 2)).toBe(1);
    const generation = rig.driver.configGeneration();
    const changed = guest.configChanged();
    guest.writeConfigU32(4, 0x12345678);
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(INTERRUPT_CONFIG_CHANGE);
    await changed;
    expect(guest.interrupts).toMatchObject({ config: 1 });
    expect(rig.driver.configGeneration()).not.toBe(generation);
    expect(rig.transport.read(MmioRegister.Config + 4, 4)).toBe(0x12345678);
    expect(rig.transport.read(MmioRegister.Config + 6, 2)).toBe(0x1234);
    expect(rig.transport.read(MmioRegister.Config + 7, 1)).toBe(0x12);
    rig.transport.write(MmioRegister.Config + 5, 1, 0xab);
    expect(rig.transport.read(MmioRegister.Config + 4, 4)).toBe(0x1234ab78);
  });

  it('spec 4.2.2.1: reset clears InterruptStatus, drops the line and clears every QueueReady', async () => {
    const rig = connect();
    const guest = new VirtioDriver(rig.driver);
    await guest.init({ packed });
    addPing(guest, guest.queue(0));
    guest.queue(0).kick();
    expect(rig.transport.interruptLevel).toBe(true);
    guest.reset();
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(0);
    expect(rig.transport.interruptLevel).toBe(false);
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(0);
    await settle();
    // The line dropped before the driver could take the interrupt: there was nothing to handle.
    expect(guest.interrupts.total).toBe(0);
    expect(rig.line).toEqual([true, false]);
    // And the device initialises again from scratch.
    await guest.init({ packed });
    expect((await guest.queue(0).request([new TextEncoder().encode('pong')], [8])).data.subarray(0, 4)).toEqual(new TextEncoder().encode('pong'));
  });

  it('spec 4.2.2: QueueReady 0 stops the queue; the device no longer touches it', async () => {
    const rig = connect();
    const guest = new VirtioDriver(rig.driver);
    await guest.init({ packed });
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    rig.transport.write(MmioRegister.QueueReady, 4, 0);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(0);
    const queue = guest.queue(0);
    addPing(guest, queue);
    queue.kick();
    await settle();
    expect(queue.collect()).toEqual([]);
    expect(rig.transport.core.violations.notify).toBe(1);
    expect(guest.interrupts.total).toBe(0);
  });

  it('spec 2.9, 4.2.3.3: with VIRTIO_F_NOTIFICATION_DATA, QueueNotify carries next_off and next_wrap above the queue index', async () => {
    const rig = connect(new LoopbackDevice({ features: WITH_NOTIFICATION_DATA }));
    const guest = new VirtioDriver(rig.driver);
    expect(hasFeature(await guest.init({ packed, notificationData: true }), VIRTIO_F_NOTIFICATION_DATA)).toBe(true);
    const queue = guest.queue(0);
    for (let round = 0; round < 3; round++) {
      addPing(guest, queue);
      queue.ring.publish();
      // Where the driver will put its next buffer (spec 2.9), computed from the ring the driver keeps.
      const next = 'availIndex' in queue.ring ? { off: queue.ring.availIndex & 0x7fff, wrap: queue.ring.availIndex >> 15 } : { off: queue.ring.availPosition.slot, wrap: queue.ring.availPosition.wrap };
      expect(queue.kick()).toBe(true);
      expect(rig.transport.core.queueSlot(0)?.queue?.notificationData).toBe((0 | (next.off << 16) | (next.wrap << 31)) >>> 0);
      expect(await queue.waitUsed()).toMatchObject([{ len: 4 }]);
    }
  });

  it('spec 4.2.3.3: without VIRTIO_F_NOTIFICATION_DATA the value is the queue index, so data bits name no queue', async () => {
    const rig = connect(new LoopbackDevice({ features: WITH_NOTIFICATION_DATA }));
    const guest = new VirtioDriver(rig.driver);
    await guest.init({ packed });
    const queue = guest.queue(0);
    addPing(guest, queue);
    queue.ring.publish();
    rig.driver.notify(0, 0x00010000);
    await settle();
    expect(queue.collect()).toEqual([]);
    expect(rig.transport.core.violations.notify).toBe(1);
  });

  it('spec 2.6.1, 4.2.2: QueueReset resets one queue, reads back 0, and the queue can be set up again', async () => {
    const rig = connect();
    const guest = new VirtioDriver(rig.driver);
    expect(hasFeature(await guest.init({ packed, ringReset: true }), VIRTIO_F_RING_RESET)).toBe(true);
    const old = guest.queue(0);
    guest.resetQueue(0);
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(0);
    expect(rig.transport.read(MmioRegister.QueueReset, 4)).toBe(0);
    // The old ring is dead to the device, whatever the guest puts there.
    old.ring.add([{ addr: guest.allocate(8), len: 8, writable: true }]);
    old.ring.publish();
    rig.driver.notify(0);
    await settle();
    expect(old.ring.takeUsed()).toBeNull();
    const queue = guest.enableQueue(0);
    expect(queue.config.descAddr).not.toBe(old.config.descAddr);
    expect((await queue.request([new TextEncoder().encode('pong')], [4])).len).toBe(4);
    expect(guest.status).toBe(LIVE);
  });
});

it('QueueReset is ignored and counted when VIRTIO_F_RING_RESET was not negotiated', async () => {
  const rig = connect();
  await new VirtioDriver(rig.driver).init();
  rig.transport.write(MmioRegister.QueueSel, 4, 0);
  rig.transport.write(MmioRegister.QueueReset, 4, 1);
  expect(rig.transport.violations.value).toBe(1);
  expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(1);
});

it('VIRTIO_F_NOTIFICATION_DATA is not offered when the VMM turns it off (ioeventfd matched on the queue index)', () => {
  expect(hasFeature(connect(new LoopbackDevice({ features: WITH_NOTIFICATION_DATA })).driver.readDeviceFeatures(), VIRTIO_F_NOTIFICATION_DATA)).toBe(true);
  const off = connect(new LoopbackDevice({ features: WITH_NOTIFICATION_DATA }), { notificationData: false });
  expect(hasFeature(off.driver.readDeviceFeatures(), VIRTIO_F_NOTIFICATION_DATA)).toBe(false);
});

describe('spec 2.10, 4.2.2: shared memory regions', () => {
  class LoopbackWithWindow extends LoopbackDevice {
    readonly sharedMemoryRegions = [{ id: 1, size: 0x2000 }];
  }

  function readShm(transport: MmioTransport, id: number): { len: bigint; base: bigint } {
    transport.write(MmioRegister.SHMSel, 4, id);
    const pair = (lowReg: number): bigint => (BigInt(transport.read(lowReg + 4, 4)) << 32n) | BigInt(transport.read(lowReg, 4));
    return { len: pair(MmioRegister.SHMLenLow), base: pair(MmioRegister.SHMBaseLow) };
  }

  it('reports a mapped region with its VMM-assigned base, and length -1 / base ~0 for any other id', () => {
    const { transport } = connect(new LoopbackWithWindow());
    const absent = { len: 0xffff_ffff_ffff_ffffn, base: 0xffff_ffff_ffff_ffffn };
    expect(readShm(transport, 1)).toEqual(absent);
    transport.mapSharedMemory({ id: 1, size: 0x2000, guestAddress: 0x80_0000_1000, bytes: new Uint8Array(0x2000) });
    expect(readShm(transport, 1)).toEqual({ len: 0x2000n, base: 0x80_0000_1000n });
    expect(readShm(transport, 0)).toEqual(absent);
    expect(() => transport.mapSharedMemory({ id: 2, size: 8, guestAddress: 0, bytes: new Uint8Array(8) })).toThrow(/no shared memory region 2/);
    expect(() => transport.mapSharedMemory({ id: 1, size: 8, guestAddress: 0, bytes: new Uint8Array(8) })).toThrow(/is 8192 bytes/);
  });
});

describe('snapshot and restore', () => {
  it('a restored transport resumes the device, drives the line for pending events, and serves the guest on', async () => {
    const memory = testMemory();
    const line: boolean[] = [];
    const attach = (device: LoopbackDevice): MmioTransport =>
      new MmioTransport({ device, memory, baseAddress: BASE, irq: { number: IRQ, set: (level) => (line.push(level), backend.interruptLine(level)) } });
    // The guest's register accesses go to whichever transport instance the VMM has: the old one, then the migrated one.
    let current = attach(new LoopbackDevice());
    const backend = new MmioDriverTransport({ read: (offset, size) => current.read(offset, size), write: (offset, size, value) => current.write(offset, size, value) }, memory);
    const guest = new VirtioDriver(backend);
    await guest.init({ eventIdx: true });
    const queue = guest.queue(0);
    addPing(guest, queue);
    queue.kick();
    // Completed, but the interrupt is not taken yet: it must survive the move.
    expect(current.interruptLevel).toBe(true);
    const saved = current.snapshot();
    current = attach(new LoopbackDevice());
    current.restore(saved);
    expect(line).toEqual([true, true]);
    expect(current.read(MmioRegister.Status, 4)).toBe(LIVE);
    expect(await queue.waitUsed()).toMatchObject([{ len: 4 }]);
    expect(guest.interrupts.total).toBe(1);
    expect(line).toEqual([true, true, false]);
    expect((await queue.request([new TextEncoder().encode('pong')], [4])).len).toBe(4);
    expect(guest.deviceErrors).toEqual([]);
  });

  it('refuses a snapshot of the other layout version', () => {
    const saved = connect().transport.snapshot();
    const legacy = new MmioTransport({ device: new LoopbackDevice(), memory: testMemory(), baseAddress: BASE, irq: { number: IRQ, set: () => undefined }, version: 1 });
    expect(() => legacy.restore(saved)).toThrow(/version 2 restored into version 1/);
  });
});
