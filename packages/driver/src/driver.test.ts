import {
  DeviceStatus,
  GuestMemory,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  featureBit,
  type ActivationContext,
  type DeviceHost,
  type Virtqueue,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { VirtioDriver } from './driver.js';
import type { DriverEvent } from './events.js';
import type { InterruptCause } from './transport.js';
import { SlowResetDevice } from './conformance/slow-reset-device.js';
import { LoopbackDevice } from './loopback-device.js';
import { coreTransportFactory } from './transport-factory.js';
import { CoreTransport } from './transports/core.js';

/**
 * A device with a 16-byte configuration space (two le64 fields) whose reads and completions the test scripts: `beforeRead` runs before
 * each configuration read, `beforeFlush` between completing chains and
 * publishing them. Chains are completed with their readable length, copying
 * nothing.
 */
class ScriptedDevice implements VirtioDevice {
  readonly contractVersion = 1;
  readonly deviceType = 63;
  readonly deviceFeatures =
    featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_EVENT_IDX) | featureBit(VIRTIO_F_IN_ORDER);
  readonly queueMaxSizes = [16];
  readonly configSize = 16;
  readonly config = new DataView(new ArrayBuffer(16));
  beforeRead: (device: ScriptedDevice) => void = () => undefined;
  beforeFlush: (queue: Virtqueue) => void = () => undefined;
  host: DeviceHost | undefined;
  private queue: Virtqueue | undefined;

  attach(host: DeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, data: Uint8Array): void {
    this.beforeRead(this);
    data.set(new Uint8Array(this.config.buffer, offset, data.length));
  }

  writeConfig(): void {}

  activate(context: ActivationContext): void {
    this.queue = context.queues.get(0);
  }

  reset(): void {
    this.queue = undefined;
  }

  notify(): void {
    const queue = this.queue;
    if (queue === undefined) return;
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) queue.addUsed(chain, chain.writableLength);
    this.beforeFlush(queue);
    queue.flush();
  }

  /** Changes the configuration as a device would: new contents, new generation. */
  change(update: (config: DataView) => void): void {
    update(this.config);
    this.host?.configChanged();
  }
}

function rig<D extends VirtioDevice>(device: D, events: DriverEvent[] = []): { driver: VirtioDriver; device: D; transport: CoreTransport } {
  const transport = coreTransportFactory.create(GuestMemory.create(1 << 20), device) as CoreTransport;
  return { driver: new VirtioDriver(transport, { trace: (e) => events.push(e) }), device, transport };
}

describe('initialisation (spec 3.1.1)', () => {
  it('negotiates wanted ∩ offered: unoffered ring and device features are left out', async () => {
    const device = new LoopbackDevice({ features: featureBit(VIRTIO_F_VERSION_1) | featureBit(3) });
    const { driver } = rig(device);
    const features = await driver.init({ packed: true, eventIdx: true, features: featureBit(3) | featureBit(5) });
    expect(features).toBe(featureBit(VIRTIO_F_VERSION_1) | featureBit(3));
    expect(driver.packed).toBe(false);
    expect(driver.status).toBe(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
  });

  it('spec 3.1.1 step 6: a refused feature set leaves FEATURES_OK clear; the driver sets FAILED and stops', async () => {
    const events: DriverEvent[] = [];
    const { driver } = rig(new LoopbackDevice(), events);
    await expect(driver.init({ exactFeatures: featureBit(VIRTIO_F_VERSION_1) | featureBit(7) })).rejects.toMatchObject({ reason: 'features-refused' });
    expect(driver.status).toBe(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FAILED);
    expect(driver.live).toBe(false);
    expect(events.some((e) => e.kind === 'queue')).toBe(false);
    // The device takes a valid set after the refusal (spec 2.2.2).
    await driver.init();
    expect(driver.live).toBe(true);
  });

  it('spec 6.1: a device without VIRTIO_F_VERSION_1 is refused with FAILED', async () => {
    const { driver } = rig(new LoopbackDevice({ features: 0n }));
    await expect(driver.init()).rejects.toMatchObject({ reason: 'not-modern' });
    expect(driver.status & DeviceStatus.FAILED).toBe(DeviceStatus.FAILED);
  });

  it('spec 3.1.1: notifications for buffers added before DRIVER_OK wait until DRIVER_OK', async () => {
    const events: DriverEvent[] = [];
    const { driver } = rig(new LoopbackDevice(), events);
    let early: Promise<{ len: number; data: Uint8Array }> | undefined;
    await driver.init({
      populate: (d) => {
        early = d.queue(0).request([Uint8Array.of(1, 2, 3)], [3]);
      },
    });
    const kinds = events.map((e) => (e.kind === 'status' ? `status:${e.written}` : e.kind));
    expect(kinds.indexOf('notify')).toBeGreaterThan(kinds.indexOf(`status:${DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK}`));
    expect((await early)?.data).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('spec 2.1.2: a device that fails at DRIVER_OK is given up on, and requests made during populate fail', async () => {
    class BrokenActivation extends LoopbackDevice {
      override activate(): void {
        throw new Error('no backing store');
      }
    }
    const { driver } = rig(new BrokenActivation());
    let early: Promise<unknown> | undefined;
    const init = driver.init({ populate: (d) => void (early = d.queue(0).request([Uint8Array.of(1)], [1])) });
    await expect(init).rejects.toMatchObject({ reason: 'needs-reset', message: expect.stringMatching(/did not go live/) });
    await expect(early).rejects.toMatchObject({ reason: 'needs-reset' });
    expect(driver.needsReset).toBe(true);
    expect(driver.status & DeviceStatus.FAILED).toBe(DeviceStatus.FAILED);
  });

  it('configuration writes before FEATURES_OK are refused (spec 3.1.1 step 4)', () => {
    const { driver } = rig(new LoopbackDevice());
    expect(() => driver.writeConfigU32(4, 1)).toThrow(/after FEATURES_OK/);
  });

  it('spec 3.1.2: a legacy driver negotiates 32 bits without FEATURES_OK and places split rings in the legacy layout (spec 2.7.2)', async () => {
    const { driver, transport } = rig(new LoopbackDevice({ queueSize: 64 }));
    transport.core.legacy = true;
    const features = await driver.init({ legacy: true, eventIdx: true, packed: true, setup: (d) => d.writeConfigU32(4, 7) });
    expect(features).toBe(featureBit(VIRTIO_F_EVENT_IDX));
    expect(driver.status).toBe(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK);
    expect(driver.readConfigU32(4)).toBe(7);
    const { config } = driver.queue(0);
    expect(config.size).toBe(64);
    expect(config.descAddr % 4096).toBe(0);
    expect(config.driverAddr).toBe(config.descAddr + 16 * 64);
    expect(config.deviceAddr).toBe(Math.ceil((config.driverAddr + 2 * (3 + 64)) / 4096) * 4096);
    expect((await driver.queue(0).request([Uint8Array.of(9, 8)], [2])).data).toEqual(Uint8Array.of(9, 8));
  });
});

describe('configuration space (spec 2.5.1)', () => {
  it('repeats a read during which the configuration generation changed', async () => {
    const events: DriverEvent[] = [];
    const { driver, device } = rig(new ScriptedDevice(), events);
    await driver.init();
    device.change((c) => c.setUint32(0, 1, true));
    let updates = 2;
    device.beforeRead = (d) => {
      if (updates-- > 0) d.change((c) => c.setUint32(0, c.getUint32(0, true) + 1, true));
    };
    expect(driver.readConfigU32(0)).toBe(3);
    expect(events.filter((e) => e.kind === 'config-retry')).toHaveLength(2);
  });

  it('never returns a torn 64-bit field, even when the device updates it between the two halves', async () => {
    const { driver, device } = rig(new ScriptedDevice());
    await driver.init();
    device.change((c) => c.setBigUint64(0, 0x1_ffff_ffffn, true));
    // Between the low and the high half the field carries over to 0x2_0000_0000: low 0xffffffff with high 2 would be torn.
    let reads = 0;
    device.beforeRead = (d) => {
      if (++reads === 2) d.change((c) => c.setBigUint64(0, 0x2_0000_0000n, true));
    };
    expect(driver.readConfigU64(0)).toBe(0x2_0000_0000n);
  });

  it('reads several fields as one snapshot with readConfigConsistent', async () => {
    const { driver, device } = rig(new ScriptedDevice());
    await driver.init();
    let reads = 0;
    let updates = 0;
    device.beforeRead = (d) => {
      // Both fields move together, between the two reads of each of the first three attempts.
      if (++reads % 2 === 0 && updates++ < 3) {
        d.change((c) => {
          c.setBigUint64(0, BigInt(updates), true);
          c.setBigUint64(8, BigInt(updates) * 10n, true);
        });
      }
    };
    const [a, b] = driver.readConfigConsistent(() => [driver.transport.readConfig(0, 8), driver.transport.readConfig(8, 8)]);
    const value = (bytes: Uint8Array | undefined): bigint => new DataView((bytes as Uint8Array).buffer).getBigUint64(0, true);
    expect([value(a), value(b)]).toEqual([3n, 30n]);
  });

  it('gives up with a DriverError when the generation never settles', async () => {
    const { driver, device } = rig(new ScriptedDevice());
    await driver.init();
    device.beforeRead = (d) => d.change(() => undefined);
    expect(() => driver.readConfigU32(0)).toThrow(expect.objectContaining({ reason: 'config-generation' }));
  });
});

describe('notifications', () => {
  it.each([
    { packed: false, expected: [0x0001_0000, 0x0002_0000] },
    // Packed: next slot and wrap counter; two-descriptor chains in a 4-entry ring wrap after the second.
    { packed: true, expected: [0x8002_0000, 0x0000_0000] },
  ])('spec 2.9: the notification carries next_off and next_wrap (packed=$packed)', async ({ packed, expected }) => {
    const { driver, device } = rig(new LoopbackDevice());
    await driver.init({ packed, notificationData: true, queueSize: 4 });
    const seen: number[] = [];
    for (let i = 0; i < 2; i++) {
      await driver.queue(0).request([Uint8Array.of(i)], [1]);
      seen.push(device.lastNotificationData);
    }
    expect(seen).toEqual(expected);
  });

  it.each([false, true])('spec 2.7.10, 2.8.10: with EVENT_IDX a kick with nothing new is not sent (packed=%s)', async (packed) => {
    const { driver } = rig(new LoopbackDevice());
    await driver.init({ packed, eventIdx: true });
    const queue = driver.queue(0);
    await queue.request([Uint8Array.of(1)], [1]);
    expect(queue.kick()).toBe(false);
    expect(queue.suppressedNotifications).toBe(1);
    expect(queue.notifications).toBe(1);
  });
});

describe('interrupts', () => {
  /** A transport whose interrupt line is shared: queue interrupts arrive without a queue index (INTx, MMIO). */
  class SharedLineTransport extends CoreTransport {
    override onInterrupt(handler: (cause: InterruptCause) => void): void {
      super.onInterrupt((cause) => handler(cause.kind === 'queue' ? { kind: 'queue', index: undefined } : cause));
    }
  }

  it('an interrupt that names no queue makes the driver look at every queue', async () => {
    const driver = new VirtioDriver(new SharedLineTransport(GuestMemory.create(1 << 20), new LoopbackDevice()));
    await driver.init();
    expect((await driver.queue(0).request([Uint8Array.of(4)], [1])).data).toEqual(Uint8Array.of(4));
    expect(driver.interrupts).toMatchObject({ total: 1, unattributed: 1, config: 0 });
    expect(driver.interrupts.queue.size).toBe(0);
  });

  it('counts queue and configuration interrupts separately', async () => {
    const { driver } = rig(new LoopbackDevice());
    await driver.init();
    await driver.queue(0).request([Uint8Array.of(1)], [1]);
    const changed = driver.configChanged();
    driver.writeConfigU32(4, 9);
    await changed;
    expect(driver.interrupts).toMatchObject({ total: 2, config: 1, unattributed: 0 });
    expect(driver.interrupts.queue.get(0)).toBe(1);
  });
});

describe('reset', () => {
  it('spec 2.4: requests in flight fail with reason "reset" and their buffers go back to the heap', async () => {
    const device = new LoopbackDevice();
    const { driver } = rig(device);
    await driver.init();
    device.holdRequests = true;
    const pending = driver.queue(0).request([new Uint8Array(100)], [100]);
    const waiting = driver.queue(0).waitUsed();
    const resetting = driver.reset();
    await expect(pending).rejects.toMatchObject({ reason: 'reset' });
    await expect(waiting).rejects.toMatchObject({ reason: 'reset' });
    await resetting;
    expect(device.releaseHeld()).toBe(0);
    expect(() => driver.queue(0)).toThrow(/not set up/);
    await driver.init();
    device.holdRequests = false;
    expect((await driver.queue(0).request([Uint8Array.of(5)], [1])).data).toEqual(Uint8Array.of(5));
  });

  it('spec 2.1.2: DEVICE_NEEDS_RESET fails pending requests and refuses new ones until a reset', async () => {
    const device = new LoopbackDevice();
    const { driver, transport } = rig(device);
    await driver.init();
    device.holdRequests = true;
    const pending = driver.queue(0).request([Uint8Array.of(1)], [1]);
    transport.core.needsReset('test: the device broke');
    expect(driver.needsReset).toBe(true);
    expect(driver.interrupts.config).toBe(1);
    await expect(pending).rejects.toMatchObject({ reason: 'needs-reset' });
    await expect(driver.queue(0).request([Uint8Array.of(1)], [1])).rejects.toMatchObject({ reason: 'needs-reset' });
    await driver.init();
    device.holdRequests = false;
    expect(driver.needsReset).toBe(false);
    expect((await driver.queue(0).request([Uint8Array.of(2)], [1])).data).toEqual(Uint8Array.of(2));
  });

  it.each([false, true])('spec 2.6.1: a queue reset fails its requests; the queue comes back in new memory (packed=%s)', async (packed) => {
    const device = new LoopbackDevice();
    const { driver } = rig(device);
    await driver.init({ packed, ringReset: true });
    const old = driver.queue(0).config;
    device.holdRequests = true;
    const pending = driver.queue(0).request([Uint8Array.of(1)], [1]);
    await driver.resetQueue(0);
    await expect(pending).rejects.toMatchObject({ reason: 'reset' });
    const queue = driver.enableQueue(0, 8);
    expect(queue.config.descAddr).not.toBe(old.descAddr);
    expect(queue.size).toBe(8);
    // The held chain belonged to the reset queue: it is dropped, not written into the new ring.
    expect(device.releaseHeld()).toBe(0);
    device.holdRequests = false;
    expect((await queue.request([Uint8Array.of(7, 8)], [2])).data).toEqual(Uint8Array.of(7, 8));
  });

  it('queue reset needs VIRTIO_F_RING_RESET negotiated', async () => {
    const { driver } = rig(new LoopbackDevice());
    await driver.init();
    await expect(driver.resetQueue(0)).rejects.toThrow(/RING_RESET/);
  });

  it('spec 2.4: with a device still finishing its I/O, requests fail at once and init() waits for status 0 before ACKNOWLEDGE', async () => {
    const device = new SlowResetDevice();
    const events: DriverEvent[] = [];
    const { driver, transport } = rig(device, events);
    await driver.init();
    device.holdRequests = true;
    const pending = driver.queue(0).request([Uint8Array.of(1)], [1]);
    const resetting = driver.reset();
    await expect(pending).rejects.toMatchObject({ reason: 'reset' });
    expect(driver.status, 'status while the device finishes its reset').not.toBe(0);
    events.length = 0;
    const initialised = driver.init();
    await Promise.resolve();
    expect(events.filter((e) => e.kind === 'status'), 'status writes before the reset completed').toEqual([]);
    device.finishResets();
    await resetting;
    await initialised;
    expect(transport.core.violations.status).toBe(0);
    device.holdRequests = false;
    expect((await driver.queue(0).request([Uint8Array.of(4)], [1])).data).toEqual(Uint8Array.of(4));
  });
});

describe('checks on what the device hands back', () => {
  /** Guest address of used ring entry `slot` (split). */
  const usedEntry = (transport: CoreTransport, slot: number): number => (transport.core.queueSlot(0)?.deviceAddr ?? 0) + 4 + 8 * slot;

  it.each([false, true])('spec 2.7.8.2: a used length beyond the writable bytes is recorded and clamped (packed=%s)', async (packed) => {
    const device = new ScriptedDevice();
    const { driver, transport } = rig(device);
    await driver.init({ packed });
    device.beforeFlush = () => {
      const slot = transport.core.queueSlot(0);
      if (slot === undefined) return;
      // The first used entry: used ring element 0 (split) or descriptor 0 (packed).
      driver.memory.setU32(packed ? slot.descAddr + 8 : usedEntry(transport, 0) + 4, 1000);
    };
    const result = await driver.queue(0).request([Uint8Array.of(1)], [4]);
    expect(result.len).toBe(4);
    expect(driver.deviceErrors).toEqual([expect.stringMatching(/len 1000, beyond its 4 writable bytes/)]);
  });

  it('a used ID that is not in flight is recorded (split)', async () => {
    const device = new ScriptedDevice();
    const { driver, transport } = rig(device);
    await driver.init();
    const queue = driver.queue(0);
    device.beforeFlush = () => driver.memory.setU32(usedEntry(transport, 0), 9);
    queue.add([{ addr: driver.allocate(4), len: 4, writable: true }]);
    queue.kick();
    expect(queue.collect()).toEqual([]);
    expect(driver.deviceErrors).toEqual([expect.stringMatching(/used ID 9, which is not in flight/)]);
  });

  it('a used ID the packed ring never handed out fails the queue', async () => {
    const device = new ScriptedDevice();
    const { driver, transport } = rig(device);
    await driver.init({ packed: true });
    device.beforeFlush = () => driver.memory.setU16((transport.core.queueSlot(0)?.descAddr ?? 0) + 12, 9);
    await expect(driver.queue(0).request([Uint8Array.of(1)], [1])).rejects.toMatchObject({ reason: 'device' });
    expect(driver.deviceErrors).toHaveLength(1);
  });

  it('spec 2.7.9: with VIRTIO_F_IN_ORDER, a chain used before an earlier one is recorded', async () => {
    const device = new ScriptedDevice();
    const { driver, transport } = rig(device);
    await driver.init({ inOrder: true });
    const queue = driver.queue(0);
    device.beforeFlush = () => {
      const first = driver.memory.getU32(usedEntry(transport, 0));
      driver.memory.setU32(usedEntry(transport, 0), driver.memory.getU32(usedEntry(transport, 1)));
      driver.memory.setU32(usedEntry(transport, 1), first);
    };
    const ids = [0, 1].map(() => queue.add([{ addr: driver.allocate(4), len: 4, writable: true }]));
    queue.kick();
    expect(queue.collect().map((u) => u.id)).toEqual([ids[1], ids[0]]);
    expect(driver.deviceErrors).toEqual([expect.stringMatching(/IN_ORDER negotiated but ID \d+ was used before ID \d+/)]);
  });
});
