import { describe, expect, it } from 'vitest';
import { VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, featureBit } from '../constants.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing } from '../testing/index.js';
import { createVirtqueue } from './create.js';

describe.each([false, true])('round trip (packed=%s)', (packed) => {
  it('spec 2.7.13 / 2.8.21: a chain goes out, is read and written by the device, and comes back used', () => {
    const memory = GuestMemory.create(1 << 20);
    const alloc = new GuestAllocator(0x1000, 1 << 20, { seed: 3 });
    const config = packed ? placePackedRing(alloc, 8) : placeSplitRing(alloc, 8);
    const driver = packed ? new PackedRingDriver(memory, config) : new SplitRingDriver(memory, config);
    let interrupts = 0;
    const features = featureBit(VIRTIO_F_VERSION_1) | (packed ? featureBit(VIRTIO_F_RING_PACKED) : 0n);
    const queue = createVirtqueue(memory, config, { index: 0, features, hooks: { interrupt: () => interrupts++, corrupt: (r) => { throw new Error(r); } } });
    const out = alloc.alloc(5);
    memory.write(out, new TextEncoder().encode('hello'));
    const back = alloc.alloc(8);
    const id = driver.add([{ addr: out, len: 5, writable: false }, { addr: back, len: 8, writable: true }]);
    driver.publish();
    const chain = queue.pop();
    expect(chain).not.toBeNull();
    if (chain === null) return;
    expect(chain.id).toBe(id);
    const text = new Uint8Array(5);
    chain.reader.read(text);
    expect(new TextDecoder().decode(text)).toBe('hello');
    chain.writer.writeU32(0xdeadbeef);
    queue.addUsed(chain, chain.writer.bytesWritten);
    expect(queue.pop()).toBeNull();
    expect(queue.flush()).toBe(true);
    expect(interrupts).toBe(1);
    expect(driver.takeUsed()).toEqual({ id, len: 4 });
    expect(memory.getU32(back)).toBe(0xdeadbeef);
  });
});
