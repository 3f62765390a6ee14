import { describe, expect, it } from 'vitest';
import * as c from './constants.js';

describe('constants carry the spec names and values', () => {
  it('spec 2.1: device status bits', () => {
    expect(c.DeviceStatus).toEqual({
      ACKNOWLEDGE: 1,
      DRIVER: 2,
      DRIVER_OK: 4,
      FEATURES_OK: 8,
      SUSPEND: 16,
      DEVICE_NEEDS_RESET: 64,
      FAILED: 128,
    });
  });

  it('spec 6: reserved feature bits', () => {
    expect({
      VIRTIO_F_NOTIFY_ON_EMPTY: c.VIRTIO_F_NOTIFY_ON_EMPTY,
      VIRTIO_F_ANY_LAYOUT: c.VIRTIO_F_ANY_LAYOUT,
      VIRTIO_F_INDIRECT_DESC: c.VIRTIO_F_INDIRECT_DESC,
      VIRTIO_F_EVENT_IDX: c.VIRTIO_F_EVENT_IDX,
      VIRTIO_F_VERSION_1: c.VIRTIO_F_VERSION_1,
      VIRTIO_F_ACCESS_PLATFORM: c.VIRTIO_F_ACCESS_PLATFORM,
      VIRTIO_F_RING_PACKED: c.VIRTIO_F_RING_PACKED,
      VIRTIO_F_IN_ORDER: c.VIRTIO_F_IN_ORDER,
      VIRTIO_F_ORDER_PLATFORM: c.VIRTIO_F_ORDER_PLATFORM,
      VIRTIO_F_SR_IOV: c.VIRTIO_F_SR_IOV,
      VIRTIO_F_NOTIFICATION_DATA: c.VIRTIO_F_NOTIFICATION_DATA,
      VIRTIO_F_NOTIF_CONFIG_DATA: c.VIRTIO_F_NOTIF_CONFIG_DATA,
      VIRTIO_F_RING_RESET: c.VIRTIO_F_RING_RESET,
      VIRTIO_F_ADMIN_VQ: c.VIRTIO_F_ADMIN_VQ,
      VIRTIO_F_SUSPEND: c.VIRTIO_F_SUSPEND,
    }).toEqual({
      VIRTIO_F_NOTIFY_ON_EMPTY: 24,
      VIRTIO_F_ANY_LAYOUT: 27,
      VIRTIO_F_INDIRECT_DESC: 28,
      VIRTIO_F_EVENT_IDX: 29,
      VIRTIO_F_VERSION_1: 32,
      VIRTIO_F_ACCESS_PLATFORM: 33,
      VIRTIO_F_RING_PACKED: 34,
      VIRTIO_F_IN_ORDER: 35,
      VIRTIO_F_ORDER_PLATFORM: 36,
      VIRTIO_F_SR_IOV: 37,
      VIRTIO_F_NOTIFICATION_DATA: 38,
      VIRTIO_F_NOTIF_CONFIG_DATA: 39,
      VIRTIO_F_RING_RESET: 40,
      VIRTIO_F_ADMIN_VQ: 41,
      VIRTIO_F_SUSPEND: 43,
    });
    expect(c.featureBit(c.VIRTIO_F_VERSION_1)).toBe(0x1_0000_0000n);
    expect(c.hasFeature(0x1_0000_0000n, c.VIRTIO_F_VERSION_1)).toBe(true);
    expect(c.hasFeature(0x1_0000_0000n, c.VIRTIO_F_RING_PACKED)).toBe(false);
  });

  it('spec 6: device-type feature bits are 0-23 and 50-127; the queue implements five reserved ones', () => {
    for (let bit = 0; bit < 140; bit++) {
      expect(c.hasFeature(c.DEVICE_SPECIFIC_FEATURES, bit), `bit ${bit}`).toBe(bit < 24 || (bit >= 50 && bit < 128));
    }
    const queue = [c.VIRTIO_F_INDIRECT_DESC, c.VIRTIO_F_EVENT_IDX, c.VIRTIO_F_VERSION_1, c.VIRTIO_F_RING_PACKED, c.VIRTIO_F_IN_ORDER];
    expect(c.QUEUE_FEATURES).toBe(queue.reduce((mask, bit) => mask | c.featureBit(bit), 0n));
    expect(c.QUEUE_FEATURES & c.DEVICE_SPECIFIC_FEATURES).toBe(0n);
  });

  it('spec 5: device IDs', () => {
    expect(c.DeviceId).toEqual({
      NET: 1,
      BLOCK: 2,
      CONSOLE: 3,
      ENTROPY: 4,
      BALLOON: 5,
      SCSI: 8,
      NINEP: 9,
      GPU: 16,
      INPUT: 18,
      VSOCK: 19,
      CRYPTO: 20,
      IOMMU: 23,
      MEM: 24,
      SOUND: 25,
      FS: 26,
      PMEM: 27,
      RPMB: 28,
      SCMI: 32,
      I2C_ADAPTER: 34,
      CAN: 36,
      GPIO: 41,
    });
  });

  it('spec 2.7.5, 2.7.6, 2.7.8, 2.8.1, 2.8.14: descriptor, ring and event suppression flags', () => {
    expect([c.VIRTQ_DESC_F_NEXT, c.VIRTQ_DESC_F_WRITE, c.VIRTQ_DESC_F_INDIRECT, c.VIRTQ_DESC_F_AVAIL, c.VIRTQ_DESC_F_USED]).toEqual([1, 2, 4, 0x80, 0x8000]);
    expect([c.VIRTQ_AVAIL_F_NO_INTERRUPT, c.VIRTQ_USED_F_NO_NOTIFY]).toEqual([1, 1]);
    expect([c.RING_EVENT_FLAGS_ENABLE, c.RING_EVENT_FLAGS_DISABLE, c.RING_EVENT_FLAGS_DESC]).toEqual([0, 1, 2]);
    expect(c.MAX_QUEUE_SIZE).toBe(32768);
  });
});
