import { coreTransportFactory } from '@virtio-ts/driver';
import { describeVirtioConformance } from '@virtio-ts/driver/conformance';
import { ccwTransportFactory } from '@virtio-ts/transport-ccw/testing';
import { mmioTransportFactory } from '@virtio-ts/transport-mmio/testing';
import { pciTransportFactory } from '@virtio-ts/transport-pci/testing';
import { expect } from 'vitest';
import { Virtio__Name__ } from './index.js';

describeVirtioConformance({
  name: '@virtio-ts/virtio-__name__ conformance',
  // The status machine alone, then the device behind each real transport, its interrupts wired to the driver.
  transports: [coreTransportFactory, mmioTransportFactory(), pciTransportFactory(), ccwTransportFactory()],
  createDevice: () => new Virtio__Name__(),
  exercise: async (driver) => {
    const request = new TextEncoder().encode('__name__ request');
    const result = await driver.queue(0).request([request], [request.length]);
    expect(result.data).toEqual(request);
  },
  inFlight: {
    // Requests complete one macrotask after the notification: at the reset they are still in flight.
    submit: (driver) => {
      const queue = driver.queue(0);
      queue.add([
        { addr: driver.allocate(16), len: 16, writable: false },
        { addr: driver.allocate(16), len: 16, writable: true },
      ]);
      queue.kick();
    },
    settle: (device) => device.idle(),
  },
});
