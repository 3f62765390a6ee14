import { LoopbackDevice } from '@virtio-ts/driver';
import { describeVirtioConformance } from '@virtio-ts/driver/conformance';
import { expect } from 'vitest';
import { mmioTransportFactory } from './harness.js';

const encoder = new TextEncoder();

// The driver package's conformance suite, every check over MMIO: the layout matrix, refused features,
// configuration bounds, malformed chains, a corrupt ring, resets with requests in flight, queue reset, notification data.
describeVirtioConformance({
  name: 'LoopbackDevice conformance over MMIO',
  createDevice: () => new LoopbackDevice(),
  transports: [mmioTransportFactory],
  exercise: async (driver) => {
    const text = encoder.encode(`loopback over mmio, ${driver.packed ? 'packed' : 'split'}`);
    const result = await driver.queue(0).request([text.subarray(0, 4), text.subarray(4)], [5, text.length]);
    expect(result.len).toBe(text.length);
    expect(result.data).toEqual(text);
  },
  inFlight: {
    submit: (driver, device) => {
      device.holdRequests = true;
      const queue = driver.queue(0);
      for (let i = 0; i < 3; i++) {
        queue.add([
          { addr: driver.allocate(8), len: 8, writable: false },
          { addr: driver.allocate(8), len: 8, writable: true },
        ]);
      }
      queue.kick();
    },
    settle: (device) => {
      device.holdRequests = false;
      expect(device.releaseHeld()).toBe(0);
    },
  },
});
