import { GuestMemory, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_RING_PACKED, hasFeature } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { VirtioDriver } from './driver.js';
import type { DriverEvent } from './events.js';
import { LoopbackDevice } from './loopback-device.js';
import { CoreTransport } from './transports/core.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function setUp(device = new LoopbackDevice()): { driver: VirtioDriver; device: LoopbackDevice; transport: CoreTransport; events: DriverEvent[] } {
  const memory = GuestMemory.create(1 << 20);
  const transport = new CoreTransport(memory, device);
  const events: DriverEvent[] = [];
  const driver = new VirtioDriver(transport, { trace: (e) => events.push(e) });
  return { driver, device, transport, events };
}

const combos = [false, true].flatMap((packed) =>
  [false, true].flatMap((indirect) => [false, true].map((eventIdx) => ({ packed, indirect, eventIdx }))),
);

describe.each(combos)('loopback device through the driver (packed=$packed indirect=$indirect eventIdx=$eventIdx)', (layout) => {
  it('spec 3.1.1: negotiates exactly the asked ring features the device offers', async () => {
    const { driver } = setUp();
    const features = await driver.init(layout);
    expect(hasFeature(features, VIRTIO_F_RING_PACKED)).toBe(layout.packed);
    expect(hasFeature(features, VIRTIO_F_INDIRECT_DESC)).toBe(layout.indirect);
    expect(hasFeature(features, VIRTIO_F_EVENT_IDX)).toBe(layout.eventIdx);
    expect(driver.live).toBe(true);
  });

  it('copies the readable part of each request into its writable part, around the ring several times', async () => {
    const { driver, device } = setUp();
    await driver.init({ ...layout, queueSize: 4 });
    const queue = driver.queue(0);
    for (let i = 0; i < 20; i++) {
      const text = `request ${i}: ${'x'.repeat(i)}`;
      const bytes = encoder.encode(text);
      const half = Math.floor(bytes.length / 2);
      // Two readable parts and two writable parts of uneven sizes, so the copy crosses buffer boundaries.
      const result = await queue.request([bytes.subarray(0, half), bytes.subarray(half)], [3, bytes.length + 5]);
      expect(result.len).toBe(bytes.length);
      expect(decoder.decode(result.data)).toBe(text);
    }
    expect(device.served).toBe(20);
    expect(driver.readConfigU32(0)).toBe(20);
    expect(driver.interrupts.queue.get(0)).toBe(20);
    expect(queue.inFlight).toBe(0);
    expect(driver.deviceErrors).toEqual([]);
  });

  it('serves a full ring of requests made available with one notification', async () => {
    const { driver, device } = setUp();
    await driver.init({ ...layout, queueSize: 8 });
    const queue = driver.queue(0);
    // Without indirect descriptors each request takes two descriptors, so 4 fill an 8-entry ring.
    const count = layout.indirect ? 8 : 4;
    device.holdRequests = true;
    const requests = Array.from({ length: count }, (_, i) => queue.request([Uint8Array.of(i, i + 1)], [2]));
    expect(queue.free).toBe(0);
    device.releaseHeld();
    const results = await Promise.all(requests);
    results.forEach((r, i) => expect([...r.data]).toEqual([i, i + 1]));
    // The ring is free again and the device still takes notifications after a full lap.
    expect(queue.free).toBe(8);
    device.holdRequests = false;
    expect((await queue.request([Uint8Array.of(9)], [1])).data).toEqual(Uint8Array.of(9));
    expect(driver.deviceErrors).toEqual([]);
  });

  it('raw add/kick/waitUsed: chains the caller places itself come back with their IDs and lengths', async () => {
    const { driver } = setUp();
    await driver.init(layout);
    const queue = driver.queue(0);
    const out = 0x8000;
    const back = 0x9000;
    driver.memory.write(out, encoder.encode('raw'));
    const id = queue.add([
      { addr: out, len: 3, writable: false },
      { addr: back, len: 16, writable: true },
    ]);
    expect(queue.kick()).toBe(true);
    expect(await queue.waitUsed()).toEqual([{ id, len: 3 }]);
    const bytes = new Uint8Array(3);
    driver.memory.read(back, bytes);
    expect(decoder.decode(bytes)).toBe('raw');
  });

  it('two callers waiting for used buffers each get a non-empty batch', async () => {
    const { driver, device } = setUp();
    await driver.init(layout);
    const queue = driver.queue(0);
    const chain = (): number =>
      queue.add([
        { addr: driver.allocate(1), len: 1, writable: false },
        { addr: driver.allocate(1), len: 1, writable: true },
      ]);
    device.holdRequests = true;
    const ids = [chain(), chain()];
    queue.kick();
    const first = queue.waitUsed();
    const second = queue.waitUsed();
    // Each held chain is completed with its own flush and interrupt: one chain for each waiter.
    device.releaseHeld();
    expect(await first).toEqual([{ id: ids[0], len: 1 }]);
    expect(await second).toEqual([{ id: ids[1], len: 1 }]);
  });

  it('records the steps of the initialisation in order (spec 3.1.1)', async () => {
    const { driver, events } = setUp();
    await driver.init(layout);
    const kinds = events.map((e) => (e.kind === 'status' ? `status:${e.written}` : e.kind));
    expect(kinds).toEqual(['reset', 'status:1', 'status:3', 'features', 'status:11', 'queue', 'status:15']);
  });
});

describe('loopback device with delayed completions', () => {
  it.each([false, true])('completes requests asynchronously and interrupts (packed=%s)', async (packed) => {
    const { driver } = setUp(new LoopbackDevice({ delayMs: 1 }));
    await driver.init({ packed, eventIdx: true });
    const queue = driver.queue(0);
    const results = await Promise.all([1, 2, 3].map((n) => queue.request([new Uint8Array(n).fill(n)], [n])));
    expect(results.map((r) => [...r.data])).toEqual([[1], [2, 2], [3, 3, 3]]);
    expect(driver.interrupts.queue.get(0)).toBeGreaterThanOrEqual(1);
  });
});
