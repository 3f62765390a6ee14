import { describe, expect, it } from 'vitest';
import { mustPop, packedFixture, pattern } from '../../test/harness.js';
import {
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_USED,
  VIRTQ_DESC_F_WRITE,
} from '../constants.js';
import type { GuestBuffer } from '../testing/index.js';

const flagsAt = (descAddr: number, slot: number): number => descAddr + 16 * slot + 14;

describe('packed virtqueue (spec 2.8)', () => {
  it('spec 2.8.1: wrap counters stay in step over many laps of a ring whose size is not a power of two', () => {
    const f = packedFixture({ size: 5 });
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    let slotsUsed = 0;
    let mismatches = 0;
    while (slotsUsed < 5 * 9) {
      // 1..3 descriptors, so lists regularly wrap around the end of the ring.
      const n = 1 + rand(3);
      const buffers: GuestBuffer[] = Array.from({ length: n }, (_, i) => ({ addr: f.alloc.alloc(8), len: 8, writable: i === n - 1 }));
      const sent = buffers.filter((b) => !b.writable).map((b, i) => pattern(f.memory, b.addr, b.len, slotsUsed + i));
      const id = f.driver.add(buffers);
      f.driver.publish();
      const chain = mustPop(f.queue);
      const got = new Uint8Array(chain.readableLength);
      chain.reader.read(got);
      if (chain.id !== id || chain.fault !== 0 || got.join() !== sent.flatMap((b) => [...b]).join()) mismatches++;
      chain.writer.writeU64(BigInt(slotsUsed));
      f.queue.addUsed(chain, 8);
      f.queue.flush();
      // takeUsed only accepts a descriptor whose AVAIL and USED bits both equal its own used wrap counter.
      const used = f.driver.takeUsed();
      if (used?.id !== id || used.len !== 8) mismatches++;
      if (f.memory.getU64(buffers[buffers.length - 1]!.addr) !== BigInt(slotsUsed)) mismatches++;
      slotsUsed += buffers.length;
    }
    expect(mismatches).toBe(0);
    expect(slotsUsed).toBeGreaterThanOrEqual(45);
    expect(f.corruptions).toEqual([]);
  });

  it('spec 2.8.1: a used descriptor has AVAIL and USED equal to the Device Ring Wrap Counter', () => {
    const f = packedFixture({ size: 2 });
    const buf = { addr: f.alloc.alloc(4), len: 4, writable: true };
    const flags: number[] = [];
    for (let i = 0; i < 4; i++) {
      f.driver.add([buf]);
      f.driver.publish();
      f.queue.addUsed(mustPop(f.queue), 4);
      f.queue.flush();
      flags.push(f.memory.getU16(flagsAt(f.config.descAddr, i % 2)) & (VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED));
      f.driver.takeUsed();
    }
    const both = VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;
    expect(flags).toEqual([both, both, 0, 0]);
  });

  it('spec 2.8.15: does not use a descriptor whose AVAIL bit has not changed', () => {
    const f = packedFixture({ size: 4 });
    const addr = f.alloc.alloc(4);
    // Written but not made available: the head's flags are held back until publish().
    f.driver.add([{ addr, len: 4, writable: false }]);
    expect(f.queue.pop()).toBeNull();
    // A descriptor from the previous lap (AVAIL = 0, USED = 1 in lap 1) is not available either.
    f.driver.writeDescriptor(1, { addr, len: 4, id: 1, flags: VIRTQ_DESC_F_USED });
    f.driver.publish();
    mustPop(f.queue);
    expect(f.queue.pop()).toBeNull();
  });

  it('spec 2.8.6: takes the buffer ID from the last descriptor of a list and writes one used descriptor for it', () => {
    const f = packedFixture({ size: 8 });
    const a = f.alloc.alloc(4);
    const b = f.alloc.alloc(4);
    const flags = f.driver.availFlags;
    f.driver.writeDescriptor(1, { addr: b, len: 4, id: 7, flags: flags | VIRTQ_DESC_F_WRITE });
    f.driver.writeDescriptor(0, { addr: a, len: 4, id: 3, flags: flags | VIRTQ_DESC_F_NEXT });
    const chain = mustPop(f.queue);
    expect(chain.id).toBe(7);
    expect(chain.readableLength).toBe(4);
    expect(chain.writableLength).toBe(4);
    f.queue.addUsed(chain, 2);
    f.queue.flush();
    expect(f.memory.getU16(f.config.descAddr + 12)).toBe(7);
    expect(f.memory.getU32(f.config.descAddr + 8)).toBe(2);
    // Slot 1 is skipped, not overwritten.
    expect(f.memory.getU16(f.config.descAddr + 16 + 12)).toBe(7);
    expect(f.memory.getU16(flagsAt(f.config.descAddr, 1)) & VIRTQ_DESC_F_USED).toBe(0);
  });

  it('spec 2.8.12: completes out of order, each used descriptor at the next used position, skipping by list length', () => {
    const f = packedFixture({ size: 8 });
    const list = (n: number): GuestBuffer[] => Array.from({ length: n }, () => ({ addr: f.alloc.alloc(4), len: 4, writable: true }));
    const ids = [f.driver.add(list(2)), f.driver.add(list(1)), f.driver.add(list(3))];
    f.driver.publish();
    const chains = [mustPop(f.queue), mustPop(f.queue), mustPop(f.queue)];
    expect(chains.map((c) => c.id)).toEqual(ids);
    f.queue.addUsed(chains[2]!, 1);
    f.queue.addUsed(chains[0]!, 2);
    f.queue.addUsed(chains[1]!, 3);
    f.queue.flush();
    // Used descriptors land at slots 0, 3 (0 + 3 slots of list 3) and 5 (3 + 2 slots of list 1).
    expect([0, 3, 5].map((slot) => f.memory.getU16(f.config.descAddr + 16 * slot + 12))).toEqual([ids[2], ids[0], ids[1]]);
    expect([f.driver.takeUsed(), f.driver.takeUsed(), f.driver.takeUsed()]).toEqual([
      { id: ids[2], len: 1 },
      { id: ids[0], len: 2 },
      { id: ids[1], len: 3 },
    ]);
    expect(f.driver.free).toBe(8);
  });

  it('spec 2.8.8: with IN_ORDER, completions are held back until every earlier buffer has completed', () => {
    const f = packedFixture({ size: 8, inOrder: true });
    const ids = [0, 1, 2].map(() => f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: true }]));
    f.driver.publish();
    const chains = [mustPop(f.queue), mustPop(f.queue), mustPop(f.queue)];
    f.queue.addUsed(chains[1]!, 2);
    f.queue.addUsed(chains[2]!, 3);
    expect(f.queue.flush()).toBe(false);
    expect(f.driver.takeUsed()).toBeNull();
    f.queue.addUsed(chains[0]!, 1);
    f.queue.flush();
    expect([f.driver.takeUsed(), f.driver.takeUsed(), f.driver.takeUsed()]).toEqual([
      { id: ids[0], len: 1 },
      { id: ids[1], len: 2 },
      { id: ids[2], len: 3 },
    ]);
  });

  it('spec 2.8.3: a used descriptor carries VIRTQ_DESC_F_WRITE exactly when the device wrote data', () => {
    const f = packedFixture({ size: 4 });
    const w = { addr: f.alloc.alloc(4), len: 4, writable: true };
    f.driver.add([w]);
    f.driver.add([w]);
    f.driver.publish();
    f.queue.addUsed(mustPop(f.queue), 4);
    f.queue.addUsed(mustPop(f.queue), 0);
    f.queue.flush();
    expect(f.memory.getU16(flagsAt(f.config.descAddr, 0)) & VIRTQ_DESC_F_WRITE).toBe(VIRTQ_DESC_F_WRITE);
    expect(f.memory.getU16(flagsAt(f.config.descAddr, 1)) & VIRTQ_DESC_F_WRITE).toBe(0);
  });

  describe('indirect descriptors (spec 2.8.7)', () => {
    it('spec 2.8.7: reads every entry of the table in order, one ring slot for the whole list', () => {
      const f = packedFixture({ size: 4, indirect: true });
      const bufs: GuestBuffer[] = [
        { addr: f.alloc.alloc(3), len: 3, writable: false },
        { addr: f.alloc.alloc(5), len: 5, writable: false },
        { addr: f.alloc.alloc(6), len: 6, writable: true },
      ];
      const sent = [pattern(f.memory, bufs[0]!.addr, 3, 1), pattern(f.memory, bufs[1]!.addr, 5, 2)];
      const id = f.driver.add(bufs, { indirectTable: f.alloc.alloc(48, 16) });
      f.driver.publish();
      const chain = mustPop(f.queue);
      expect(chain).toMatchObject({ id, fault: 0, readableLength: 8, writableLength: 6, descriptorCount: 3 });
      const got = new Uint8Array(8);
      chain.reader.read(got);
      expect(got).toEqual(Uint8Array.of(...sent[0]!, ...sent[1]!));
      f.queue.addUsed(chain, 6);
      f.queue.flush();
      expect(f.driver.takeUsed()).toEqual({ id, len: 6 });
      expect(f.driver.free).toBe(4);
    });

    it('spec 2.8.7: ignores reserved flags and buffer IDs inside the table, and WRITE on the indirect descriptor', () => {
      const f = packedFixture({ size: 4, indirect: true });
      const table = f.alloc.alloc(32, 16);
      const a = f.alloc.alloc(4);
      const b = f.alloc.alloc(4);
      f.driver.writeRaw(table, { addr: a, len: 4, id: 999, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_INDIRECT });
      f.driver.writeRaw(table + 16, { addr: b, len: 4, id: 5, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_AVAIL });
      f.driver.writeDescriptor(0, { addr: table, len: 32, id: 2, flags: f.driver.availFlags | VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE });
      const chain = mustPop(f.queue);
      expect(chain).toMatchObject({ id: 2, fault: 0, readableLength: 4, writableLength: 4 });
    });
  });

  describe('driver event suppression: used buffer notifications (spec 2.8.10)', () => {
    const completeOne = (f: ReturnType<typeof packedFixture>): boolean => {
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      f.queue.addUsed(mustPop(f.queue), 0);
      const raised = f.queue.flush();
      f.driver.takeUsed();
      return raised;
    };

    it('spec 2.8.10: RING_EVENT_FLAGS_ENABLE notifies on every batch, RING_EVENT_FLAGS_DISABLE never', () => {
      const f = packedFixture({ size: 4 });
      f.driver.setDriverEvent(RING_EVENT_FLAGS_DISABLE);
      expect(completeOne(f)).toBe(false);
      expect(completeOne(f)).toBe(false);
      f.driver.setDriverEvent(RING_EVENT_FLAGS_ENABLE);
      expect(completeOne(f)).toBe(true);
      expect(completeOne(f)).toBe(true);
      expect(f.interrupts).toBe(2);
    });

    it('spec 2.8.10: RING_EVENT_FLAGS_DESC notifies once the descriptor at off_wrap is used, in the matching lap', () => {
      const f = packedFixture({ size: 4, eventIdx: true });
      expect(completeOne(f)).toBe(true);
      // Ask for slot 2 of the current lap (wrap 1): slot 1 is used quietly, slot 2 notifies.
      f.driver.setDriverEvent(RING_EVENT_FLAGS_DESC, 2 | (1 << 15));
      expect(completeOne(f)).toBe(false);
      expect(completeOne(f)).toBe(true);
      // Slot 3 then wraps; ask for slot 1 of the next lap (wrap 0).
      f.driver.setDriverEvent(RING_EVENT_FLAGS_DESC, 1 | (0 << 15));
      expect(completeOne(f)).toBe(false);
      expect(completeOne(f)).toBe(false);
      expect(completeOne(f)).toBe(true);
      // The same offset with the wrong wrap counter is a whole lap away.
      f.driver.setDriverEvent(RING_EVENT_FLAGS_DESC, 3 | (1 << 15));
      expect(completeOne(f)).toBe(false);
      expect(completeOne(f)).toBe(false);
      expect(f.interrupts).toBe(3);
    });

    it('spec 2.8.10: RING_EVENT_FLAGS_DESC within a batch notifies once for the batch', () => {
      const f = packedFixture({ size: 8, eventIdx: true });
      expect(completeOne(f)).toBe(true);
      f.driver.setDriverEvent(RING_EVENT_FLAGS_DESC, 4 | (1 << 15));
      for (let i = 0; i < 5; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      for (let i = 0; i < 5; i++) f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.flush()).toBe(true);
      expect(f.interrupts).toBe(2);
    });

    it('spec 2.8.10: RING_EVENT_FLAGS_DESC without VIRTIO_F_EVENT_IDX is not honoured (notifies as ENABLE)', () => {
      const f = packedFixture({ size: 4 });
      completeOne(f);
      f.driver.setDriverEvent(RING_EVENT_FLAGS_DESC, 3 | (1 << 15));
      expect(completeOne(f)).toBe(true);
    });
  });

  describe('device event suppression: available buffer notifications (spec 2.8.10)', () => {
    const deviceEvent = (f: ReturnType<typeof packedFixture>): { offWrap: number; flags: number } => ({
      offWrap: f.memory.getU16(f.config.deviceAddr),
      flags: f.memory.getU16(f.config.deviceAddr + 2),
    });

    it('spec 2.8.10: without EVENT_IDX, switches between RING_EVENT_FLAGS_ENABLE and RING_EVENT_FLAGS_DISABLE', () => {
      const f = packedFixture({ size: 4 });
      expect(deviceEvent(f).flags).toBe(RING_EVENT_FLAGS_ENABLE);
      f.queue.disableNotification();
      expect(deviceEvent(f).flags).toBe(RING_EVENT_FLAGS_DISABLE);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(false);
      expect(f.queue.enableNotification()).toBe(true);
      expect(deviceEvent(f).flags).toBe(RING_EVENT_FLAGS_ENABLE);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(true);
    });

    it('spec 2.8.10: with EVENT_IDX, asks for a notification at the next descriptor it will read (RING_EVENT_FLAGS_DESC)', () => {
      const f = packedFixture({ size: 4, eventIdx: true });
      expect(deviceEvent(f)).toEqual({ offWrap: 1 << 15, flags: RING_EVENT_FLAGS_DESC });
      for (let i = 0; i < 3; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(true);
      for (let i = 0; i < 3; i++) f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.pop()).toBeNull();
      expect(deviceEvent(f)).toEqual({ offWrap: 3 | (1 << 15), flags: RING_EVENT_FLAGS_DESC });
      f.queue.flush();
      for (let i = 0; i < 3; i++) f.driver.takeUsed();
      // The next descriptor, slot 3, wraps the driver's counter: the device's event matches it.
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(true);
      f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.pop()).toBeNull();
      expect(deviceEvent(f)).toEqual({ offWrap: 0, flags: RING_EVENT_FLAGS_DESC });
    });
  });
});
