import { GuestMemory, VIRTIO_F_RING_RESET, hasFeature } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import type { InitOptions } from '../driver.js';
import type { TransportFactory } from '../transport-factory.js';
import type { DriverTransport } from '../transport.js';
import { exerciseLoopback } from './loopback.js';
import { slowResetGuest, type SlowResetGuest } from './slow-reset-guest.js';

const MEMORY_SIZE = 4 << 20;

/** Whether `work` has settled yet; lets the event loop run a few timer turns first, so a driver that does not wait would have finished. */
async function settledAfterTurns(work: Promise<void>): Promise<boolean> {
  let settled = false;
  work.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setTimeout(resolve, 2));
  return settled;
}

/** {@link slowResetGuest} over `transport`, initialised with `init`; every reset is let finish afterwards. */
async function withSlowDevice(transport: TransportFactory, init: InitOptions, body: (rig: SlowResetGuest<{ readonly driver: DriverTransport }>) => Promise<void>): Promise<void> {
  const memory = GuestMemory.create(MEMORY_SIZE);
  const window = transport.driverWindow?.(memory);
  const rig = await slowResetGuest((device) => ({ driver: transport.create(memory, device) }), init, window === undefined ? {} : { window });
  try {
    await body(rig);
  } finally {
    const reset = rig.guest.reset();
    rig.device.finishResets();
    await reset;
  }
}

/**
 * Registers the reset-completion checks (vitest `describe`/`it`) over every
 * transport given, with a {@link SlowResetDevice}: a device reset and a queue
 * reset that the device finishes only later are reported as under way by the
 * transport until then (device status non-zero, the queue reset register 1),
 * the driver waits for them, and the device serves again afterwards (spec 2.4,
 * 2.6.1). A transport without VIRTIO_F_RING_RESET skips the queue reset check
 * with a `SKIP:` line.
 */
export function describeResetCompletion(transports: readonly TransportFactory[]): void {
  describe('resets the device finishes later', () => {
    for (const transport of transports) {
      describe(`over ${transport.name}`, () => {
        it('spec 2.4: status stays non-zero until the device has finished its reset, and the driver waits for 0', async () => {
          await withSlowDevice(transport, {}, async ({ guest, device }) => {
            await exerciseLoopback(guest);
            const resetting = guest.reset();
            expect(await settledAfterTurns(resetting), 'the reset completed before the device finished it').toBe(false);
            expect(device.resetsUnderWay).toBe(1);
            expect(guest.status, 'device status while the reset is under way').not.toBe(0);
            device.finishResets();
            await resetting;
            expect(guest.status).toBe(0);
            await guest.init();
            await exerciseLoopback(guest);
          });
        });

        it('spec 2.6.1: a queue reset is under way until the device has finished it, and the queue serves again after', async (context) => {
          await withSlowDevice(transport, { ringReset: true }, async ({ guest, device }) => {
            if (!hasFeature(guest.features, VIRTIO_F_RING_RESET)) {
              console.warn(`SKIP: queue reset completion over ${transport.name}: VIRTIO_F_RING_RESET is not negotiated over this transport`);
              context.skip();
            }
            await exerciseLoopback(guest);
            const resetting = guest.resetQueue(0);
            expect(await settledAfterTurns(resetting), 'the queue reset completed before the device finished it').toBe(false);
            expect(device.resetsUnderWay).toBe(1);
            device.finishResets();
            await resetting;
            guest.enableQueue(0);
            await exerciseLoopback(guest);
          });
        });
      });
    }
  });
}
