/**
 * The virtio conformance suite from @virtio-ts/driver over CCW, with the
 * loopback device: revision 2 with adapter indicators and with classic ones,
 * and revision 1, which has no READ_STATUS. Then resets the device finishes
 * later, over both revisions.
 */
import { describeResetCompletion, describeVirtioConformance, loopbackConformance } from '@virtio-ts/driver/conformance';
import { ccwTransportFactory } from '../src/testing.js';

const revision1 = ccwTransportFactory({ maxRevision: 1 });

describeVirtioConformance({
  ...loopbackConformance('LoopbackDevice over virtio-ccw', [ccwTransportFactory(), ccwTransportFactory({ adapterInterrupts: false }), revision1]),
  // spec 4.3.2.3 adds READ_STATUS in revision 2 for exactly this: before it a driver cannot see DEVICE_NEEDS_RESET.
  skip: (check, transport) => (check.id === 'corrupt-ring' && transport === revision1 ? 'revision 1 has no READ_STATUS, so the driver cannot read DEVICE_NEEDS_RESET' : undefined),
});
// Resets the device finishes later: VDEV_RESET completes only then, and the driver waits for it (spec 4.3.3.3.1).
describeResetCompletion([ccwTransportFactory(), revision1]);
