import { exerciseLoopback, slowResetGuest } from '@virtio-ts/driver/conformance';
import { DeviceStatus } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { CommonCfg, PciBarIndex, type PciTransport } from '../src/index.js';
import { wire } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK } = DeviceStatus;
const LIVE = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;

/** A common configuration field, read as the guest reads it (the structure is at the start of the virtio BAR). */
function common(fn: PciTransport, offset: number, size: number): number {
  return fn.barRead(PciBarIndex.VIRTIO, offset, size);
}

describe('resets the device finishes later (spec 2.4, 2.6.1)', () => {
  it('spec 4.1.4.3.1: device_status keeps its value until the device has finished its reset; the modern driver polls, so nothing is held', async () => {
    const { fn, device, guest } = await slowResetGuest(wire);
    const resetting = guest.reset();
    expect(fn.pendingCompletion).toBeUndefined();
    expect(common(fn, CommonCfg.DEVICE_STATUS, 1)).toBe(LIVE);
    device.finishResets();
    await resetting;
    expect(common(fn, CommonCfg.DEVICE_STATUS, 1)).toBe(0);
    await guest.init();
    await exerciseLoopback(guest);
  });

  it('spec 4.1.4.3.1: queue_reset and queue_enable read 1 while the queue reset is under way, and the queue cannot be programmed before', async () => {
    const { fn, device, guest } = await slowResetGuest(wire, { ringReset: true });
    const resetting = guest.resetQueue(0);
    expect(common(fn, CommonCfg.QUEUE_SELECT, 2)).toBe(0);
    expect(common(fn, CommonCfg.QUEUE_RESET, 2)).toBe(1);
    expect(common(fn, CommonCfg.QUEUE_ENABLE, 2)).toBe(1);
    const refused = fn.core.violations.queue;
    fn.barWrite(PciBarIndex.VIRTIO, CommonCfg.QUEUE_DESC_LO, 4, 0x1000);
    fn.barWrite(PciBarIndex.VIRTIO, CommonCfg.QUEUE_ENABLE, 2, 1);
    expect(fn.core.violations.queue).toBe(refused + 2);
    device.finishResets();
    await resetting;
    expect(common(fn, CommonCfg.QUEUE_RESET, 2)).toBe(0);
    expect(common(fn, CommonCfg.QUEUE_ENABLE, 2)).toBe(0);
    guest.enableQueue(0);
    await exerciseLoopback(guest);
  });
});
