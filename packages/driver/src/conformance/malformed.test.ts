import { GuestMemory } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { VirtioDriver } from '../driver.js';
import { LoopbackDevice } from '../loopback-device.js';
import { coreTransportFactory } from '../transport-factory.js';
import { usedChain } from './harness.js';
import { MALFORMED_CHAINS, malformedChainsFor } from './malformed.js';

const cases = [false, true].flatMap((packed) => [false, true].flatMap((indirect) => malformedChainsFor(packed, indirect).map((chain) => ({ packed, indirect, chain }))));

describe('malformed chains', () => {
  it('every case applies to at least one layout', () => {
    for (const chain of MALFORMED_CHAINS) expect(cases.some((c) => c.chain === chain), chain.name).toBe(true);
  });

  it.each(cases.map((c) => [`${c.chain.name} (${c.packed ? 'packed' : 'split'}, indirect ${c.indirect ? 'on' : 'off'})`, c] as const))(
    'the virtqueue refuses %s, and the ring stays usable',
    async (_name, { packed, indirect, chain }) => {
      const device = new LoopbackDevice();
      const driver = new VirtioDriver(coreTransportFactory.create(GuestMemory.create(1 << 20), device));
      await driver.init({ packed, indirect, queueSize: 8 });
      const queue = driver.queue(0);
      // Twice round an 8-entry ring, so the corruption meets every slot position and wrap.
      for (let i = 0; i < 6; i++) {
        const id = chain.build(driver, queue);
        queue.kick();
        expect(await usedChain(queue, id)).toEqual({ id, len: 0 });
        expect(device.faults).toBe(i + 1);
        expect((await queue.request([Uint8Array.of(i)], [1])).data).toEqual(Uint8Array.of(i));
      }
      expect(driver.deviceErrors).toEqual([]);
    },
  );
});
