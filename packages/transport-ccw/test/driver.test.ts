/**
 * End to end: the guest driver (CcwDriverTransport) initialises a real device
 * through channel programs and moves requests through split and packed rings,
 * over both revisions and both kinds of queue indicators.
 */
import type { LoopbackDevice } from '@virtio-ts/driver';
import { SlowResetDevice } from '@virtio-ts/driver/conformance';
import {
  DeviceStatus,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
  type QueueConfig,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it } from 'vitest';
import { RAM, acknowledgedRig, driverRig, settle, type AcknowledgedRig, type RigOptions } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK } = DeviceStatus;
const ALL_FEATURES = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_NOTIFICATION_DATA);

interface Guest extends AcknowledgedRig {
  readonly ring: SplitRingDriver | PackedRingDriver;
  readonly alloc: GuestAllocator;
  readonly features: bigint;
}

/** spec 3.1.1 through the CCW driver: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue 0, DRIVER_OK unless told not to. */
function initialise(options: RigOptions & { packed?: boolean; notificationData?: boolean; driverOk?: boolean } = {}): Guest {
  const rig = acknowledgedRig({ loopback: { features: ALL_FEATURES }, ...options });
  const { driver } = rig;
  const offered = driver.readDeviceFeatures();
  expect(offered).toBe(ALL_FEATURES);
  const wanted =
    featureBit(VIRTIO_F_VERSION_1) |
    (options.packed === true ? featureBit(VIRTIO_F_RING_PACKED) : 0n) |
    (options.notificationData === true ? featureBit(VIRTIO_F_NOTIFICATION_DATA) : 0n);
  driver.writeDriverFeatures(wanted);
  driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  expect(driver.getStatus()).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  expect(driver.queueCount()).toBe(1);
  const size = driver.queueMaxSize(0);
  const alloc = new GuestAllocator(RAM.start, RAM.end, { seed: 5 });
  const config: QueueConfig = options.packed === true ? placePackedRing(alloc, size) : placeSplitRing(alloc, size);
  const ring = options.packed === true ? new PackedRingDriver(rig.memory, config) : new SplitRingDriver(rig.memory, config);
  expect(driver.setupQueue(0, config)).toBe(true);
  if (options.driverOk !== false) driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  return { ...rig, ring, alloc, features: wanted };
}

/** spec 2.9: vq_index 0, then next_off and next_wrap of the next available entry. */
function notificationData(ring: SplitRingDriver | PackedRingDriver): number {
  const next = ring instanceof SplitRingDriver ? ring.availIndex : ring.availPosition.slot | (ring.availPosition.wrap << 15);
  return (next << 16) >>> 0;
}

/** Sends `count` requests one by one and checks each echo. */
function echo(guest: Guest, count: number): void {
  const { memory, driver, ring, alloc } = guest;
  const out = alloc.alloc(64, 8);
  const back = alloc.alloc(64, 8);
  for (let i = 0; i < count; i++) {
    memory.fill(out, 64, (i + 1) & 0xff);
    memory.fill(back, 64, 0);
    ring.add([
      { addr: out, len: 64, writable: false },
      { addr: back, len: 64, writable: true },
    ]);
    ring.publish();
    if (ring.kickNeeded()) driver.notify(0, hasFeature(guest.features, VIRTIO_F_NOTIFICATION_DATA) ? notificationData(ring) : undefined);
    expect(ring.takeUsed()).toMatchObject({ len: 64 });
    expect(memory.getU8(back + 63)).toBe((i + 1) & 0xff);
  }
}

describe('virtio-ccw end to end with the guest driver', () => {
  for (const revision of [1, 2]) {
    for (const packed of [false, true]) {
      for (const adapter of [true, false]) {
        it(`revision ${revision}, ${packed ? 'packed' : 'split'} ring, ${adapter ? 'adapter' : 'classic'} indicators`, () => {
          const guest = initialise({ driverRevision: revision, packed, driverAdapter: adapter });
          expect(guest.driver.revision).toBe(revision);
          expect(guest.driver.indicatorMode).toBe(adapter ? 'adapter' : 'classic');
          expect(guest.driver.deviceId()).toBe(guest.device.deviceType);
          echo(guest, 300);
          expect((guest.device as LoopbackDevice).served).toBe(300);
          expect(guest.causes.length).toBe(300);
          expect(guest.causes.every((c) => c.kind === 'queue' && c.index === 0)).toBe(true);
          if (adapter) expect(guest.adapterInterrupts.every((isc) => isc === 3)).toBe(true);
          else expect(guest.adapterInterrupts).toEqual([]);
        });
      }
    }
  }

  it('the driver falls back to revision 1 when the device rejects revision 2', () => {
    const guest = initialise({ maxRevision: 1 });
    expect(guest.driver.revision).toBe(1);
    echo(guest, 3);
  });

  it('the driver falls back to classic indicators when the channel subsystem has no adapter interruptions', () => {
    const guest = initialise({ adapterInterrupts: false });
    expect(guest.driver.indicatorMode).toBe('classic');
    echo(guest, 3);
  });

  it('the notification data variant carries next_off and next_wrap (spec 4.3.3.2, 2.9)', () => {
    for (const packed of [false, true]) {
      const guest = initialise({ packed, notificationData: true });
      expect(hasFeature(guest.features, VIRTIO_F_NOTIFICATION_DATA)).toBe(true);
      echo(guest, 5);
      const data = guest.transport.core.queueSlot(0)?.queue?.notificationData ?? -1;
      expect(data & 0xffff).toBe(0);
      // After 5 chains of 2 descriptors: split next_off is avail idx 5; packed is descriptor slot 10, wrap counter 1.
      expect(data >>> 16).toBe(packed ? 10 | 0x8000 : 5);
    }
  });

  it('a configuration change reaches the driver through the configuration indicator (spec 4.3.3.1.1)', () => {
    const guest = initialise();
    const before = guest.driver.configGeneration();
    guest.driver.writeConfig(4, new Uint8Array([1, 2, 3, 4]));
    expect(guest.causes).toEqual([{ kind: 'config' }]);
    expect([...guest.driver.readConfig(4, 4)]).toEqual([1, 2, 3, 4]);
    expect(guest.driver.configGeneration()).toBe(before + 1);
    expect(guest.driver.configGeneration()).toBe(before + 1);
  });

  it('reads the configuration space like Linux: offset + length bytes from its start, zeros past its end', () => {
    const guest = initialise();
    guest.driver.writeConfig(4, new Uint8Array([9, 8, 7, 6]));
    expect([...guest.driver.readConfig(6, 4)]).toEqual([7, 6, 0, 0]);
    expect(guest.driver.lastResponse?.residualCount).toBe(2);
  });

  it('a driver that never writes DRIVER_OK gets no service and no interrupts', () => {
    const guest = initialise({ driverOk: false });
    const { ring, driver, alloc } = guest;
    ring.add([
      { addr: alloc.alloc(8, 8), len: 8, writable: false },
      { addr: alloc.alloc(8, 8), len: 8, writable: true },
    ]);
    ring.publish();
    driver.notify(0);
    expect(ring.takeUsed()).toBeNull();
    expect((guest.device as LoopbackDevice).served).toBe(0);
    expect(guest.causes).toEqual([]);
  });

  it('after a reset the driver initialises the device again', () => {
    const guest = initialise({ packed: true });
    echo(guest, 2);
    guest.driver.reset();
    expect(guest.driver.getStatus()).toBe(0);
    expect(guest.driver.indicatorMode).toBeUndefined();
    expect(guest.transport.core.queueSlot(0)?.enabled).toBe(false);
  });

  it('spec 4.3.3.3.1: the driver waits for a VDEV_RESET that completes only once the device has finished', async () => {
    const device = new SlowResetDevice({ features: ALL_FEATURES });
    const guest = initialise({ device });
    echo(guest, 2);
    const resetting = guest.driver.reset();
    expect(resetting, 'the driver is left waiting').toBeInstanceOf(Promise);
    let done = false;
    void (resetting as Promise<void>).then(() => (done = true));
    await settle();
    expect(done, 'the reset completed before the device finished it').toBe(false);
    expect(guest.transport.busy).toBe(true);
    expect(guest.driver.getStatus(), 'the status before the reset, until it completes').toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(() => guest.driver.queueMaxSize(0), 'the subchannel is busy meanwhile').toThrow(/condition code 2/);
    device.finishResets();
    await resetting;
    expect(guest.transport.busy).toBe(false);
    expect(guest.transport.core.status).toBe(0);
    expect(guest.driver.getStatus()).toBe(0);
    expect(guest.driver.indicatorMode).toBeUndefined();
    expect(guest.driver.reset()).toBeUndefined();
  });

  it('the driver refuses a device whose revisions it does not speak', () => {
    expect(() => driverRig({ maxRevision: 2, driverRevision: 0 })).toThrow(/accepts no virtio-ccw revision/);
  });
});
