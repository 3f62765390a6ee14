import type { DriverTransport, InterruptCause } from '@virtio-ts/driver';
import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  hasFeature,
  type GuestMemory,
  type QueueConfig,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';

/** One queue as the guest set it up. */
export interface GuestQueue {
  readonly index: number;
  readonly config: QueueConfig;
  readonly ring: SplitRingDriver | PackedRingDriver;
}

/** A device the guest initialised: negotiated features, its queues and the interrupts it received. */
export interface Guest {
  readonly transport: DriverTransport;
  readonly memory: GuestMemory;
  readonly features: bigint;
  readonly queues: readonly GuestQueue[];
  readonly interrupts: InterruptCause[];
  readonly allocator: GuestAllocator;
}

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK } = DeviceStatus;

/**
 * The device initialisation sequence of spec 3.1.1, step by step through the
 * transport: reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK and
 * its check, queue setup, DRIVER_OK. `wanted` is intersected with the offer.
 */
export function bringUp(transport: DriverTransport, memory: GuestMemory, wanted: bigint, queueSize = 64): Guest {
  const interrupts: InterruptCause[] = [];
  transport.onInterrupt((cause) => interrupts.push(cause));
  transport.reset();
  transport.setStatus(ACKNOWLEDGE);
  transport.setStatus(ACKNOWLEDGE | DRIVER);
  const features = transport.readDeviceFeatures() & wanted;
  transport.writeDriverFeatures(features);
  transport.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  if ((transport.getStatus() & FEATURES_OK) === 0) throw new Error('the device refused FEATURES_OK');
  const allocator = new GuestAllocator(0x10_0000, memory.size, { seed: 11 });
  const packed = hasFeature(features, VIRTIO_F_RING_PACKED);
  const eventIdx = hasFeature(features, VIRTIO_F_EVENT_IDX);
  const queues: GuestQueue[] = [];
  for (let index = 0; index < transport.queueCount(); index++) {
    const max = transport.queueMaxSize(index);
    if (max === 0) continue;
    const size = Math.min(max, queueSize);
    const config = packed ? placePackedRing(allocator, size) : placeSplitRing(allocator, size);
    const ring = packed ? new PackedRingDriver(memory, config, { eventIdx }) : new SplitRingDriver(memory, config, { eventIdx });
    if (!transport.setupQueue(index, config)) throw new Error(`queue ${index} did not enable`);
    queues.push({ index, config, ring });
  }
  transport.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  return { transport, memory, features, queues, interrupts, allocator };
}

/** Makes buffers available on `queue` and notifies if the device asked for it, with notification data when negotiated (spec 2.9). */
export function submit(guest: Guest, queue: GuestQueue, buffers: readonly { addr: number; len: number; writable: boolean }[]): number {
  const id = queue.ring.add(buffers);
  queue.ring.publish();
  if (queue.ring.kickNeeded()) guest.transport.notify(queue.index, notificationData(guest, queue));
  return id;
}

/** The 32-bit notification value of spec 2.9 if VIRTIO_F_NOTIFICATION_DATA was negotiated. */
export function notificationData(guest: Guest, queue: GuestQueue): number | undefined {
  if (!hasFeature(guest.features, VIRTIO_F_NOTIFICATION_DATA)) return undefined;
  if (queue.ring instanceof SplitRingDriver) return (queue.index | (queue.ring.availIndex << 16)) >>> 0;
  const { slot, wrap } = queue.ring.availPosition;
  return (queue.index | ((slot | (wrap << 15)) << 16)) >>> 0;
}

/** Sends `payload` out and a `responseLength` buffer in on `queue`; returns the buffer addresses. */
export function request(guest: Guest, queue: GuestQueue, payload: Uint8Array, responseLength: number): { id: number; response: number } {
  const out = guest.allocator.alloc(payload.length, 8);
  guest.memory.write(out, payload);
  const response = guest.allocator.alloc(responseLength, 8);
  const id = submit(guest, queue, [
    { addr: out, len: payload.length, writable: false },
    { addr: response, len: responseLength, writable: true },
  ]);
  return { id, response };
}
