import { describe, expect, it } from 'vitest';
import { mustPop, packedFixture, ringFeatures, ringFixture, sameBytes, splitFixture, type RingOptions } from '../../test/harness.js';
import { VIRTQ_DESC_F_NEXT } from '../constants.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { GuestAllocator, placePackedRing, placeSplitRing } from '../testing/index.js';
import { createVirtqueue, queueConfigProblem } from './create.js';

const hooks = { interrupt: (): void => undefined, corrupt: (): void => undefined };

describe.each(['little-endian', 'big-endian'] as const)('a corrupt split ring (%s) is reported once and the queue stops', (byteOrder) => {
  const splitRing = (options: RingOptions) => splitFixture({ ...options, byteOrder });

  it('spec 2.7.6: an available index that jumps by more than the queue size (split)', () => {
    const f = splitRing({ size: 4 });
    f.driver.setAvailIdx(5);
    expect(f.queue.pop()).toBeNull();
    expect(f.queue.pop()).toBeNull();
    expect(f.queue.enableNotification()).toBe(false);
    expect(f.corruptions).toHaveLength(1);
    expect(f.corruptions[0]).toMatch(/queue 0: available index moved from 0 to 5/);
    expect(f.queue.broken).toBe(true);
  });

  it('spec 2.7.6.1: an available index that goes backwards (split)', () => {
    const f = splitRing({ size: 4 });
    f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
    f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
    f.driver.publish();
    f.queue.addUsed(mustPop(f.queue), 0);
    f.queue.addUsed(mustPop(f.queue), 0);
    f.driver.setAvailIdx(1);
    expect(f.queue.pop()).toBeNull();
    expect(f.corruptions).toHaveLength(1);
  });

  it('spec 2.7.6: an available ring entry naming a descriptor beyond the queue size (split)', () => {
    const f = splitRing({ size: 4 });
    f.driver.pushAvail(4);
    f.driver.publish();
    expect(f.queue.pop()).toBeNull();
    expect(f.queue.pop()).toBeNull();
    expect(f.corruptions).toEqual(['queue 0: available ring entry 0 names descriptor 4, beyond the queue size']);
  });

  it('spec 2.7: more buffers in flight than the queue holds (split)', () => {
    const f = splitRing({ size: 4 });
    for (let i = 0; i < 4; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
    f.driver.publish();
    const chains = [0, 1, 2, 3].map(() => mustPop(f.queue));
    // The driver offers descriptor 0 again while all four chains are still with the device.
    f.driver.pushAvail(0);
    f.driver.publish();
    expect(f.queue.pop()).toBeNull();
    expect(f.corruptions).toHaveLength(1);
    // Chains already popped can still be completed.
    for (const c of chains) f.queue.addUsed(c, 0);
    expect(f.queue.flush()).toBe(true);
    expect(f.driver.usedPending).toBe(4);
  });

});

describe('a corrupt packed ring is reported once and the queue stops', () => {
  it('spec 2.8.17: a descriptor list that never ends (packed)', () => {
    const f = packedFixture({ size: 4 });
    f.driver.addRaw([0, 1, 2, 3].map(() => ({ addr: f.alloc.alloc(4), len: 4, id: 0, flags: VIRTQ_DESC_F_NEXT })));
    f.driver.publish();
    expect(f.queue.pop()).toBeNull();
    expect(f.queue.pop()).toBeNull();
    // A broken queue has nothing to serve, whatever the ring still shows: a device re-checking after enabling stops.
    expect(f.queue.enableNotification()).toBe(false);
    expect(f.corruptions).toEqual(['queue 0: a descriptor list runs round the whole ring without ending']);
    expect(f.queue.inFlight).toBe(0);
  });

  it('spec 2.8: more descriptors in flight than the ring holds (packed)', () => {
    const f = packedFixture({ size: 4 });
    for (let i = 0; i < 4; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
    f.driver.publish();
    for (let i = 0; i < 4; i++) mustPop(f.queue);
    // Slot 0 made available again in the next lap although the device has not used it.
    f.driver.writeDescriptor(0, { addr: f.alloc.alloc(4), len: 4, id: 0, flags: f.driver.availFlags });
    expect(f.queue.pop()).toBeNull();
    expect(f.corruptions).toEqual(['queue 0: the driver made more descriptors available than the ring holds']);
    expect(f.queue.inFlight).toBe(4);
  });
});

describe.each([
  ['spec 2.7', false, 'little-endian'],
  ['spec 2.7.3 (legacy big-endian split)', false, 'big-endian'],
  ['spec 2.8', true, 'little-endian'],
] as const)('queue lifecycle (%s)', (layout, packed, byteOrder) => {
  const layoutRing = (options: RingOptions = {}) => ringFixture(packed, { ...options, byteOrder });

  it(`${layout}: undoPop gives the latest chain back and the next pop returns it again`, () => {
    const f = layoutRing({ size: 4 });
    const a = f.alloc.alloc(8);
    f.memory.setU32(a, 0xfeedf00d);
    const first = f.driver.add([{ addr: a, len: 4, writable: false }, { addr: f.alloc.alloc(8), len: 8, writable: false }, { addr: f.alloc.alloc(8), len: 8, writable: true }]);
    const second = f.driver.add([{ addr: f.alloc.alloc(8), len: 8, writable: true }]);
    f.driver.publish();
    const chain = mustPop(f.queue);
    expect(chain.reader.readU32()).toBe(0xfeedf00d);
    f.queue.undoPop(chain);
    expect(f.queue.inFlight).toBe(0);
    const again = mustPop(f.queue);
    expect(again).toMatchObject({ id: first, readableLength: 12, writableLength: 8 });
    expect(again.reader.readU32()).toBe(0xfeedf00d);
    expect(mustPop(f.queue).id).toBe(second);
    expect(() => f.queue.undoPop(again)).toThrow(/latest pop/);
  });

  it(`${layout}: addUsed refuses a chain completed twice or popped from another queue`, () => {
    const f = layoutRing();
    const g = layoutRing();
    for (const x of [f, g]) {
      x.driver.add([{ addr: x.alloc.alloc(4), len: 4, writable: false }]);
      x.driver.publish();
    }
    const chain = mustPop(f.queue);
    expect(() => g.queue.addUsed(chain, 0)).toThrow(/not popped from this queue/);
    f.queue.addUsed(chain, 0);
    expect(() => f.queue.addUsed(chain, 0)).toThrow(/already completed/);
  });

  it(`${layout}: after detach nothing is popped, published, or written, and no interrupt is raised`, () => {
    const f = layoutRing({ size: 4 });
    for (let i = 0; i < 3; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: true }]);
    f.driver.publish();
    const chain = mustPop(f.queue);
    const inFlight = mustPop(f.queue);
    f.queue.addUsed(chain, 4);
    const before = new Uint8Array(f.memory.regions[0]!.bytes);
    f.queue.detach();
    expect(f.queue.detached).toBe(true);
    expect(f.queue.pop()).toBeNull();
    f.queue.addUsed(inFlight, 4);
    expect(f.queue.flush()).toBe(false);
    expect(f.queue.enableNotification()).toBe(false);
    f.queue.disableNotification();
    expect(sameBytes(f.memory.regions[0]!.bytes, before)).toBe(true);
    expect(f.interrupts).toBe(0);
    expect(f.driver.takeUsed()).toBeNull();
  });

  it(`spec 2.9: records the notification data of the latest driver notification`, () => {
    const f = layoutRing();
    expect(f.queue.notificationData).toBe(-1);
    f.queue.setNotificationData(0x8003_0001);
    expect(f.queue.notificationData).toBe(0x8003_0001);
    f.queue.setNotificationData(-1);
    expect(f.queue.notificationData).toBe(0xffff_ffff);
  });

  it(`${layout}: position() and start resume a ring where another queue left it, across a wrap`, () => {
    // 3 slots (packed) or 4 (split) so that four chains wrap the packed ring.
    const f = layoutRing({ size: packed ? 3 : 4 });
    const buf = { addr: f.alloc.alloc(4), len: 4, writable: true };
    const serve = (n: number): number[] => {
      const ids = Array.from({ length: n }, () => f.driver.add([buf]));
      f.driver.publish();
      const got: number[] = [];
      for (let i = 0; i < n; i++) {
        const c = mustPop(f.queue);
        got.push(c.id);
        expect(c.id).toBe(ids[i]);
        f.queue.addUsed(c, 4);
      }
      f.queue.flush();
      for (const id of ids) expect(f.driver.takeUsed()).toEqual({ id, len: 4 });
      return got;
    };
    serve(2);
    serve(2);
    const position = f.queue.position();
    expect(position).toEqual(
      packed
        ? { availIndex: 1, availWrapCounter: false, usedIndex: 1, usedWrapCounter: false }
        : { availIndex: 4, availWrapCounter: false, usedIndex: 4, usedWrapCounter: false },
    );
    f.queue.detach();
    f.recreate(position);
    serve(3);
    serve(1);
    expect(f.corruptions).toEqual([]);
  });
});

describe('queue configuration (spec 2.6, 2.7, 2.8.10.1)', () => {
  const memory = (): GuestMemory =>
    new GuestMemory([
      { guestAddress: 0, buffer: new ArrayBuffer(0x10000) },
      { guestAddress: 0x20000, buffer: new ArrayBuffer(0x1000), readonly: true },
    ]);

  it('spec 2.7: a split queue size must be a power of two no larger than 32768', () => {
    const m = memory();
    const at = { descAddr: 0x1000, driverAddr: 0x3000, deviceAddr: 0x5000 };
    expect(queueConfigProblem(m, { size: 256, ...at }, false)).toBeUndefined();
    expect(queueConfigProblem(m, { size: 3, ...at }, false)).toMatch(/power of two/);
    expect(queueConfigProblem(m, { size: 0, ...at }, false)).toMatch(/not in 1\.\.32768/);
    expect(queueConfigProblem(m, { size: 65536, ...at }, false)).toMatch(/not in 1\.\.32768/);
    expect(queueConfigProblem(m, { size: 1.5, ...at }, false)).toMatch(/not in 1\.\.32768/);
  });

  it('spec 2.8.10.1: a packed queue size need not be a power of two', () => {
    expect(queueConfigProblem(memory(), { size: 3, descAddr: 0x1000, driverAddr: 0x3000, deviceAddr: 0x3004 }, true)).toBeUndefined();
  });

  it('spec 2.7 / 2.8.10.1: each area is aligned and lies in writable guest memory', () => {
    const m = memory();
    const ok = { size: 8, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x3000 };
    expect(queueConfigProblem(m, { ...ok, descAddr: 0x1008 }, false)).toMatch(/not aligned to 16/);
    expect(queueConfigProblem(m, { ...ok, driverAddr: 0x2001 }, false)).toMatch(/not aligned to 2/);
    expect(queueConfigProblem(m, { ...ok, deviceAddr: 0x3002 }, false)).toMatch(/not aligned to 4/);
    expect(queueConfigProblem(m, { ...ok, deviceAddr: 0x3002 }, true)).toMatch(/not aligned to 4/);
    expect(queueConfigProblem(m, { ...ok, descAddr: 0xffc0 }, false)).toMatch(/not inside one writable region/);
    expect(queueConfigProblem(m, { ...ok, deviceAddr: 0x20000 }, false)).toMatch(/not inside one writable region/);
    expect(queueConfigProblem(m, { ...ok, driverAddr: 0x40000 }, true)).toMatch(/not inside one writable region/);
    expect(queueConfigProblem(m, { ...ok, descAddr: -16 }, true)).toMatch(/not a guest address/);
    expect(queueConfigProblem(m, { ...ok, descAddr: 2 ** 60 }, true)).toMatch(/not a guest address/);
  });

  it('createVirtqueue throws a RangeError naming the problem, and checks the resume position', () => {
    const m = memory();
    const alloc = new GuestAllocator(0x1000, 0x10000);
    const split = placeSplitRing(alloc, 8);
    const packed = placePackedRing(alloc, 5);
    expect(() => createVirtqueue(m, { ...split, size: 6 }, { index: 2, features: ringFeatures(false, {}), hooks })).toThrow(
      /^queue 2: split queue size 6 is not a power of two$/,
    );
    const start = { availIndex: 0, availWrapCounter: true, usedIndex: 0, usedWrapCounter: true };
    expect(() => createVirtqueue(m, split, { index: 0, features: ringFeatures(false, {}), hooks, start: { ...start, availIndex: 0xffff } })).not.toThrow();
    expect(() => createVirtqueue(m, split, { index: 0, features: ringFeatures(false, {}), hooks, start: { ...start, usedIndex: 0x10000 } })).toThrow(
      /resume used index 65536/,
    );
    expect(() => createVirtqueue(m, packed, { index: 0, features: ringFeatures(true, {}), hooks, start: { ...start, availIndex: 4 } })).not.toThrow();
    expect(() => createVirtqueue(m, packed, { index: 0, features: ringFeatures(true, {}), hooks, start: { ...start, availIndex: 5 } })).toThrow(
      /resume available index 5 is not in 0\.\.4/,
    );
    expect(() => createVirtqueue(m, packed, { index: 0, features: ringFeatures(true, {}), hooks, start: { ...start, usedIndex: 0.5 } })).toThrow(RangeError);
  });

  it('spec 2.7.3: a big-endian ring is a legacy split ring, refused with VIRTIO_F_VERSION_1 or VIRTIO_F_RING_PACKED', () => {
    const m = memory();
    const alloc = new GuestAllocator(0x1000, 0x10000);
    const split = placeSplitRing(alloc, 8);
    const packed = placePackedRing(alloc, 8);
    const legacy = ringFeatures(false, { byteOrder: 'big-endian' });
    expect(createVirtqueue(m, split, { index: 0, features: legacy, hooks, byteOrder: 'big-endian' }).packed).toBe(false);
    expect(() => createVirtqueue(m, split, { index: 1, features: ringFeatures(false, {}), hooks, byteOrder: 'big-endian' })).toThrow(
      /^queue 1: big-endian rings are legacy split rings/,
    );
    expect(() => createVirtqueue(m, packed, { index: 0, features: ringFeatures(true, { byteOrder: 'big-endian' }), hooks, byteOrder: 'big-endian' })).toThrow(RangeError);
  });
});
