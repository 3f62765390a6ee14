import { exerciseLoopback, slowResetGuest } from '@virtio-ts/driver/conformance';
import { DeviceStatus } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { MmioRegister as Reg } from '../src/index.js';
import { connect, settle } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK } = DeviceStatus;
const LIVE = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;

describe('resets the device finishes later (spec 2.4, 2.6.1)', () => {
  it('spec 2.4: Status 0 leaves the status as it was and pendingCompletion holds the vCPU until the device is done', async () => {
    const { transport, device, guest } = await slowResetGuest(connect);
    expect(transport.pendingCompletion).toBeUndefined();
    // Linux's vm_reset: one write, no read-back.
    transport.write(Reg.Status, 4, 0);
    const held = transport.pendingCompletion;
    expect(held).toBeInstanceOf(Promise);
    expect(transport.read(Reg.Status, 4)).toBe(LIVE);
    // Another vCPU carrying on regardless gets nowhere until the reset is done.
    transport.write(Reg.Status, 4, ACKNOWLEDGE);
    expect(transport.read(Reg.Status, 4)).toBe(LIVE);
    expect(transport.core.violations.status).toBe(1);
    expect(transport.pendingCompletion).toBe(held);
    device.finishResets();
    await held;
    expect(transport.read(Reg.Status, 4)).toBe(0);
    expect(transport.pendingCompletion).toBeUndefined();
    await guest.init();
    await exerciseLoopback(guest);
  });

  it('spec 4.2.2.1: QueueReset and QueueReady read 1 while the queue reset is under way, and the queue cannot be programmed before', async () => {
    const { transport, device, guest } = await slowResetGuest(connect, { ringReset: true });
    const resetting = guest.resetQueue(0);
    expect(transport.read(Reg.QueueReset, 4)).toBe(1);
    expect(transport.read(Reg.QueueReady, 4)).toBe(1);
    // The driver polls QueueReset (spec 4.2.2.2): nothing for the VMM to hold.
    expect(transport.pendingCompletion).toBeUndefined();
    const refused = transport.core.violations.queue;
    transport.write(Reg.QueueDescLow, 4, 0x1000);
    transport.write(Reg.QueueReady, 4, 1);
    expect(transport.core.violations.queue).toBe(refused + 2);
    device.finishResets();
    await resetting;
    expect(transport.read(Reg.QueueReset, 4)).toBe(0);
    expect(transport.read(Reg.QueueReady, 4)).toBe(0);
    guest.enableQueue(0);
    await exerciseLoopback(guest);
  });

  it('spec 4.2.2.1: QueueReady 0 on a running queue reads 1 until the device has stopped touching it', async () => {
    const { transport, device } = await slowResetGuest(connect);
    transport.write(Reg.QueueSel, 4, 0);
    transport.write(Reg.QueueReady, 4, 0);
    expect(transport.read(Reg.QueueReady, 4)).toBe(1);
    device.finishResets();
    await settle();
    expect(transport.read(Reg.QueueReady, 4)).toBe(0);
  });
});
