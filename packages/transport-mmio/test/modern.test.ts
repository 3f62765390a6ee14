import { LoopbackDevice, type InterruptCause } from '@virtio-ts/driver';
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
  type GuestMemory,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, SplitRingDriver, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, MMIO_MAGIC_VALUE, MmioRegister, MmioTransport } from '../src/index.js';
import { BASE, IRQ, ResettableLoopback, connect, initialise, settle, testMemory, type RingDriver } from './harness.js';

const DEFAULT_FEATURES =
  featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_EVENT_IDX);

/** Puts "ping" and 8 writable bytes on the ring; returns where the device will write. */
function sendPing(memory: GuestMemory, ring: RingDriver, alloc: GuestAllocator): number {
  const out = alloc.alloc(4);
  memory.write(out, new TextEncoder().encode('ping'));
  const back = alloc.alloc(8);
  ring.add([
    { addr: out, len: 4, writable: false },
    { addr: back, len: 8, writable: true },
  ]);
  ring.publish();
  return back;
}

function buffers(): GuestAllocator {
  return new GuestAllocator(0x80000, 0x100000, { seed: 5 });
}

describe.each([
  ['split', 0n],
  ['packed', featureBit(VIRTIO_F_RING_PACKED)],
])('MMIO version 2, %s ring', (_layout, packedBit) => {
  const wanted = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_EVENT_IDX) | packedBit;

  it('spec 4.2.3.1: identifies as virtio-mmio version 2 carrying the device', () => {
    const { transport } = connect();
    expect(transport.read(MmioRegister.MagicValue, 4)).toBe(MMIO_MAGIC_VALUE);
    expect(transport.read(MmioRegister.Version, 4)).toBe(2);
    expect(transport.read(MmioRegister.DeviceID, 4)).toBe(new LoopbackDevice().deviceType);
    expect(transport.read(MmioRegister.VendorID, 4)).toBe(0);
  });

  it('spec 3.1.1, 4.2.3.2-4.2.3.4: initialises, serves a request, and interrupts on a level line the driver acknowledges', async () => {
    const rig = connect();
    const { features, rings } = initialise(rig.driver, wanted);
    expect(hasFeature(features, VIRTIO_F_RING_PACKED)).toBe(packedBit !== 0n);
    expect(rig.driver.getStatus()).toBe(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    const ring = rings[0] as RingDriver;
    const back = sendPing(rig.memory, ring, buffers());
    expect(ring.kickNeeded()).toBe(true);
    rig.driver.notify(0);
    // The device used the buffer and asserted the line within the QueueNotify write.
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(INTERRUPT_USED_BUFFER);
    expect(rig.transport.interruptLevel).toBe(true);
    expect(rig.interrupts).toEqual([]);
    await settle();
    // The driver took the interrupt afterwards, acknowledged it, and the line dropped.
    expect(rig.interrupts).toEqual<InterruptCause[]>([{ kind: 'queue', index: undefined }]);
    expect(rig.line).toEqual([true, false]);
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(0);
    expect(ring.takeUsed()).toMatchObject({ len: 4 });
    expect(new TextDecoder().decode(rig.memory.slice(back, 4))).toBe('ping');
  });

  it('spec 2.5.1, 4.2.2: configuration reads and writes at 0x100 in 8/16/32-bit accesses, with a configuration change interrupt', async () => {
    const rig = connect();
    const { rings } = initialise(rig.driver, wanted);
    sendPing(rig.memory, rings[0] as RingDriver, buffers());
    rig.driver.notify(0);
    await settle();
    expect(new DataView(rig.driver.readConfig(0, 4).buffer).getUint32(0, true)).toBe(1);
    expect(rig.transport.read(MmioRegister.Config, 1)).toBe(1);
    expect(rig.transport.read(MmioRegister.Config, 2)).toBe(1);
    const generation = rig.driver.configGeneration();
    rig.interrupts.length = 0;
    rig.driver.writeConfig(4, Uint8Array.of(0x78, 0x56, 0x34, 0x12));
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(INTERRUPT_CONFIG_CHANGE);
    await settle();
    expect(rig.interrupts).toEqual<InterruptCause[]>([{ kind: 'config' }]);
    expect(rig.driver.configGeneration()).not.toBe(generation);
    expect(rig.transport.read(MmioRegister.Config + 4, 4)).toBe(0x12345678);
    expect(rig.transport.read(MmioRegister.Config + 6, 2)).toBe(0x1234);
    expect(rig.transport.read(MmioRegister.Config + 7, 1)).toBe(0x12);
    rig.transport.write(MmioRegister.Config + 5, 1, 0xab);
    expect(rig.transport.read(MmioRegister.Config + 4, 4)).toBe(0x1234ab78);
  });

  it('spec 4.2.2.1: reset clears InterruptStatus, drops the line and clears every QueueReady', async () => {
    const rig = connect();
    const { rings } = initialise(rig.driver, wanted);
    sendPing(rig.memory, rings[0] as RingDriver, buffers());
    rig.driver.notify(0);
    expect(rig.transport.interruptLevel).toBe(true);
    rig.driver.reset();
    expect(rig.transport.read(MmioRegister.InterruptStatus, 4)).toBe(0);
    expect(rig.transport.interruptLevel).toBe(false);
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(0);
    await settle();
    // The line was deasserted before the driver could take the interrupt: nothing to handle.
    expect(rig.interrupts).toEqual([]);
    expect(rig.line).toEqual([true, false]);
    // And the device can be initialised again from scratch.
    const again = initialise(rig.driver, wanted);
    sendPing(rig.memory, again.rings[0] as RingDriver, buffers());
    rig.driver.notify(0);
    await settle();
    expect(again.rings[0]?.takeUsed()).toMatchObject({ len: 4 });
  });

  it('spec 4.2.2: QueueReady 0 stops the queue; the device no longer touches it', async () => {
    const rig = connect();
    const { rings } = initialise(rig.driver, wanted);
    const ring = rings[0] as RingDriver;
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    rig.transport.write(MmioRegister.QueueReady, 4, 0);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(0);
    sendPing(rig.memory, ring, buffers());
    rig.driver.notify(0);
    await settle();
    expect(ring.takeUsed()).toBeNull();
    expect(rig.transport.core.violations.notify).toBe(1);
    expect(rig.interrupts).toEqual([]);
  });

  it('spec 2.9, 4.2.3.3: with VIRTIO_F_NOTIFICATION_DATA, QueueNotify carries next_off and next_wrap above the queue index', async () => {
    const rig = connect(new LoopbackDevice({ features: DEFAULT_FEATURES | featureBit(VIRTIO_F_NOTIFICATION_DATA) }));
    const { features, rings } = initialise(rig.driver, wanted | featureBit(VIRTIO_F_NOTIFICATION_DATA));
    expect(hasFeature(features, VIRTIO_F_NOTIFICATION_DATA)).toBe(true);
    const ring = rings[0] as RingDriver;
    sendPing(rig.memory, ring, buffers());
    const next = 'availIndex' in ring ? { off: ring.availIndex & 0x7fff, wrap: ring.availIndex >> 15 } : { off: ring.availPosition.slot, wrap: ring.availPosition.wrap };
    const data = (0 | (next.off << 16) | (next.wrap << 31)) >>> 0;
    rig.driver.notify(0, data);
    expect(rig.transport.core.queueSlot(0)?.queue?.notificationData).toBe(data);
    await settle();
    expect(ring.takeUsed()).toMatchObject({ len: 4 });
  });

  it('spec 4.2.3.3: without VIRTIO_F_NOTIFICATION_DATA the value is the queue index, so data bits name no queue', async () => {
    const rig = connect(new LoopbackDevice({ features: DEFAULT_FEATURES | featureBit(VIRTIO_F_NOTIFICATION_DATA) }));
    const { rings } = initialise(rig.driver, wanted);
    const ring = rings[0] as RingDriver;
    sendPing(rig.memory, ring, buffers());
    rig.driver.notify(0, 0x00010000);
    await settle();
    expect(ring.takeUsed()).toBeNull();
    expect(rig.transport.core.violations.notify).toBe(1);
  });
});

it('VIRTIO_F_NOTIFICATION_DATA is not offered when the VMM turns it off (ioeventfd matched on the queue index)', () => {
  const device = new LoopbackDevice({ features: DEFAULT_FEATURES | featureBit(VIRTIO_F_NOTIFICATION_DATA) });
  expect(hasFeature(connect(device).driver.readDeviceFeatures(), VIRTIO_F_NOTIFICATION_DATA)).toBe(true);
  const off = connect(new LoopbackDevice({ features: DEFAULT_FEATURES | featureBit(VIRTIO_F_NOTIFICATION_DATA) }), { notificationData: false });
  expect(hasFeature(off.driver.readDeviceFeatures(), VIRTIO_F_NOTIFICATION_DATA)).toBe(false);
  expect(off.transport.notifyAddress).toBe(off.transport.description.baseAddress + MmioRegister.QueueNotify);
});

describe('spec 2.6.1, 4.2.2: QueueReset with VIRTIO_F_RING_RESET', () => {
  const wanted = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_RESET);

  it('resets one queue, reads back 0, and the queue can be set up again at a new place', async () => {
    const rig = connect(new ResettableLoopback());
    const { features, rings } = initialise(rig.driver, wanted);
    expect(hasFeature(features, VIRTIO_F_RING_RESET)).toBe(true);
    rig.driver.resetQueue(0);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(0);
    expect(rig.transport.read(MmioRegister.QueueReset, 4)).toBe(0);
    sendPing(rig.memory, rings[0] as RingDriver, buffers());
    rig.driver.notify(0);
    await settle();
    expect(rings[0]?.takeUsed()).toBeNull();

    const config = placeSplitRing(new GuestAllocator(4 << 20, 5 << 20, { seed: 2 }), 8);
    const ring = new SplitRingDriver(rig.memory, config);
    expect(rig.driver.setupQueue(0, config)).toBe(true);
    const back = sendPing(rig.memory, ring, buffers());
    rig.driver.notify(0);
    await settle();
    expect(ring.takeUsed()).toMatchObject({ len: 4 });
    expect(new TextDecoder().decode(rig.memory.slice(back, 4))).toBe('ping');
    expect(rig.driver.getStatus() & DeviceStatus.DEVICE_NEEDS_RESET).toBe(0);
  });

  it('is ignored and counted when VIRTIO_F_RING_RESET was not negotiated', () => {
    const rig = connect(new ResettableLoopback());
    initialise(rig.driver, featureBit(VIRTIO_F_VERSION_1));
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    rig.transport.write(MmioRegister.QueueReset, 4, 1);
    expect(rig.transport.violations.value).toBe(1);
    expect(rig.transport.read(MmioRegister.QueueReady, 4)).toBe(1);
  });
});

describe('spec 2.10, 4.2.2: shared memory regions', () => {
  class LoopbackWithWindow extends LoopbackDevice {
    readonly sharedMemoryRegions = [{ id: 1, size: 0x2000 }];
  }

  function readShm(rig: ReturnType<typeof connect>, id: number): { len: bigint; base: bigint } {
    const t = rig.transport;
    t.write(MmioRegister.SHMSel, 4, id);
    const pair = (lowReg: number): bigint => (BigInt(t.read(lowReg + 4, 4)) << 32n) | BigInt(t.read(lowReg, 4));
    return { len: pair(MmioRegister.SHMLenLow), base: pair(MmioRegister.SHMBaseLow) };
  }

  it('reports a mapped region with its VMM-assigned base, and length -1 / base ~0 for any other id', () => {
    const rig = connect(new LoopbackWithWindow());
    const absent = { len: 0xffff_ffff_ffff_ffffn, base: 0xffff_ffff_ffff_ffffn };
    expect(readShm(rig, 1)).toEqual(absent);
    rig.transport.mapSharedMemory({ id: 1, size: 0x2000, guestAddress: 0x80_0000_1000, bytes: new Uint8Array(0x2000) });
    expect(readShm(rig, 1)).toEqual({ len: 0x2000n, base: 0x80_0000_1000n });
    expect(readShm(rig, 0)).toEqual(absent);
    expect(() => rig.transport.mapSharedMemory({ id: 2, size: 8, guestAddress: 0, bytes: new Uint8Array(8) })).toThrow(/no shared memory region 2/);
    expect(() => rig.transport.mapSharedMemory({ id: 1, size: 8, guestAddress: 0, bytes: new Uint8Array(8) })).toThrow(/is 8192 bytes/);
  });
});

describe('snapshot and restore', () => {
  it('a restored transport resumes the device, drives the line for pending events, and serves the next request', async () => {
    const rig = connect();
    const { rings } = initialise(rig.driver, featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_EVENT_IDX));
    const ring = rings[0] as RingDriver;
    const alloc = buffers();
    sendPing(rig.memory, ring, alloc);
    rig.driver.notify(0);
    expect(ring.takeUsed()).toMatchObject({ len: 4 });
    rig.transport.write(MmioRegister.QueueSel, 4, 0);
    const saved = rig.transport.snapshot();

    // The same kind of device, a fresh transport, the same guest memory: as after migration.
    const moved = connect(new LoopbackDevice(), { memory: rig.memory });
    moved.transport.restore(saved);
    expect(moved.line).toEqual([true]);
    expect(moved.transport.read(MmioRegister.Status, 4)).toBe(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    expect(moved.transport.read(MmioRegister.QueueReady, 4)).toBe(1);
    await settle();
    expect(moved.interrupts).toEqual<InterruptCause[]>([{ kind: 'queue', index: undefined }]);
    expect(moved.line).toEqual([true, false]);
    const back = sendPing(rig.memory, ring, alloc);
    if (ring.kickNeeded()) moved.driver.notify(0);
    expect(ring.takeUsed()).toMatchObject({ len: 4 });
    expect(new TextDecoder().decode(rig.memory.slice(back, 4))).toBe('ping');
  });

  it('refuses a snapshot of the other layout version', () => {
    const saved = connect().transport.snapshot();
    const legacy = new MmioTransport({ device: new LoopbackDevice(), memory: testMemory(), baseAddress: BASE, irq: { number: IRQ, set: () => undefined }, version: 1 });
    expect(() => legacy.restore(saved)).toThrow(/version 2 restored into version 1/);
  });
});
