/**
 * The virtio conformance suite from @virtio-ts/driver over PCI, with the
 * loopback device: MSI-X with a vector per queue, INTx with the ISR status, and
 * a PCI Express function driven entirely through the configuration access
 * window with one notification address for every queue.
 */
import { LoopbackDevice, type VirtioDriver } from '@virtio-ts/driver';
import { describeVirtioConformance } from '@virtio-ts/driver/conformance';
import { expect } from 'vitest';
import { pciTransportFactory } from './harness.js';

const encoder = new TextEncoder();

describeVirtioConformance<LoopbackDevice>({
  name: 'LoopbackDevice over virtio-pci',
  transports: [
    pciTransportFactory('MSI-X', {}, { interrupts: 'msix' }),
    pciTransportFactory('INTx', {}, { interrupts: 'intx' }),
    pciTransportFactory('PCI Express, INTx, configuration access window, notify_off_multiplier 0', { express: true, notifyOffMultiplier: 0 }, { interrupts: 'intx', access: 'pci-cfg' }),
  ],
  createDevice: () => new LoopbackDevice(),
  exercise: async (driver: VirtioDriver) => {
    const text = encoder.encode(`pci loopback ${driver.packed ? 'packed' : 'split'}`);
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
