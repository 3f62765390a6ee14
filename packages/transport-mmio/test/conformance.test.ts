import { describeResetCompletion, describeVirtioConformance, loopbackConformance } from '@virtio-ts/driver/conformance';
import { mmioTransportFactory } from '../src/testing.js';

// The driver package's conformance suite, every check over MMIO: the layout matrix, refused features,
// configuration bounds, malformed chains, a corrupt ring, resets with requests in flight, queue reset, notification data.
describeVirtioConformance(loopbackConformance('LoopbackDevice conformance over MMIO', [mmioTransportFactory()]));
// Resets the device finishes later: Status and QueueReset stay non-zero, the driver (held by the VMM, or polling) waits.
describeResetCompletion([mmioTransportFactory()]);
