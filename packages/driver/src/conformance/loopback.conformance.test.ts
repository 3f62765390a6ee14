import { expect } from 'vitest';
import { LoopbackDevice } from '../loopback-device.js';
import { describeVirtioConformance } from './index.js';

const encoder = new TextEncoder();

describeVirtioConformance({
  name: 'LoopbackDevice conformance',
  createDevice: () => new LoopbackDevice(),
  exercise: async (driver) => {
    const text = encoder.encode(`loopback ${driver.packed ? 'packed' : 'split'}`);
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
