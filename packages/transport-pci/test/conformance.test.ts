/**
 * The virtio conformance suite from @virtio-ts/driver over PCI, with the
 * loopback device: MSI-X with a vector per queue, INTx with the ISR status, and
 * a PCI Express function driven entirely through the configuration access
 * window with one notification address for every queue. Then resets the device
 * finishes later, over the same set-ups.
 */
import { describeResetCompletion, describeVirtioConformance, loopbackConformance } from '@virtio-ts/driver/conformance';
import { pciTransportFactory } from '../src/testing.js';

const transports = [
  pciTransportFactory({ name: 'MSI-X', driver: { interrupts: 'msix' } }),
  pciTransportFactory({ name: 'INTx', driver: { interrupts: 'intx' } }),
  pciTransportFactory({
    name: 'PCI Express, INTx, configuration access window, notify_off_multiplier 0',
    transport: { express: true, notifyOffMultiplier: 0 },
    driver: { interrupts: 'intx', access: 'pci-cfg' },
  }),
];

describeVirtioConformance(loopbackConformance('LoopbackDevice over virtio-pci', transports));
describeResetCompletion(transports);
