import { expect } from 'vitest';
import type { VirtioDriver } from '../driver.js';
import { LoopbackDevice } from '../loopback-device.js';
import type { TransportFactory } from '../transport-factory.js';
import type { ConformanceOptions } from './checks.js';

const encoder = new TextEncoder();

/** One request through the loopback device's queue, in two readable and two writable buffers: what goes out comes back. */
export async function exerciseLoopback(driver: VirtioDriver): Promise<void> {
  const text = encoder.encode(`loopback over ${driver.transport.name}, ${driver.packed ? 'packed' : 'split'} ring`);
  const result = await driver.queue(0).request([text.subarray(0, 4), text.subarray(4)], [5, text.length]);
  expect(result.len).toBe(text.length);
  expect(result.data).toEqual(text);
}

/**
 * The conformance suite's options for the {@link LoopbackDevice} over
 * `transports` (default: the status machine directly): the suite every
 * transport runs with the loopback device, with {@link exerciseLoopback} as the
 * request and three requests held in flight across a reset.
 */
export function loopbackConformance(name: string, transports?: readonly TransportFactory[]): ConformanceOptions<LoopbackDevice> {
  return {
    name,
    ...(transports === undefined ? {} : { transports }),
    createDevice: () => new LoopbackDevice(),
    exercise: exerciseLoopback,
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
        // Every held request belonged to the device before its reset: none may complete.
        expect(device.releaseHeld()).toBe(0);
      },
    },
  };
}
