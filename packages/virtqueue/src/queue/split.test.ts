import { describe, expect, it } from 'vitest';
import { mustPop, pattern, splitFixture, type RingOptions } from '../../test/harness.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY } from '../constants.js';
import { splitRingSizes } from './split.js';

/** Offsets inside the split rings (spec 2.7.6, 2.7.8). */
const usedIdxAt = (deviceAddr: number): number => deviceAddr + 2;
const usedEntryAt = (deviceAddr: number, slot: number): number => deviceAddr + 4 + 8 * slot;
const availEventAt = (deviceAddr: number, size: number): number => deviceAddr + 4 + 8 * size;

describe.each([
  ['little-endian', 'spec 2.7'],
  ['big-endian', 'spec 2.7, legacy big-endian per spec 2.7.3'],
] as const)('split virtqueue, %s (%s)', (byteOrder, _spec) => {
  const splitRing = (options: RingOptions = {}) => splitFixture({ ...options, byteOrder });

  it('spec 2.7.6: consumes the available ring in order and reports each head as the chain id', () => {
    const f = splitRing();
    const heads = [0, 1, 2].map(() => f.driver.add([{ addr: f.alloc.alloc(16), len: 16, writable: false }]));
    f.driver.publish();
    expect([0, 1, 2].map(() => mustPop(f.queue).id)).toEqual(heads);
    expect(f.queue.pop()).toBeNull();
  });

  it('spec 2.7.4.1: accepts any arrangement of readable and writable descriptors (readable ones first)', () => {
    const f = splitRing({ size: 16 });
    const lens = [3, 1, 4096, 7, 2];
    const bufs = lens.map((len, i) => ({ addr: f.alloc.alloc(len), len, writable: i >= 3 }));
    const sent = bufs.slice(0, 3).map((b, i) => pattern(f.memory, b.addr, b.len, i));
    f.driver.add(bufs);
    f.driver.publish();
    const chain = mustPop(f.queue);
    expect(chain.readableLength).toBe(3 + 1 + 4096);
    expect(chain.writableLength).toBe(9);
    expect(chain.descriptorCount).toBe(5);
    const got = new Uint8Array(chain.readableLength);
    expect(chain.reader.read(got)).toBe(got.length);
    expect(got).toEqual(Uint8Array.from(sent.flatMap((b) => [...b])));
    chain.writer.write(Uint8Array.from({ length: 9 }, (_, i) => 0xa0 + i));
    expect([...new Uint8Array(f.memory.slice(bufs[3]!.addr, 7)!)]).toEqual([0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6]);
    expect([...new Uint8Array(f.memory.slice(bufs[4]!.addr, 2)!)]).toEqual([0xa7, 0xa8]);
  });

  it('spec 2.7.8.2: writes id and len before idx, and idx only at flush', () => {
    const f = splitRing();
    const back = f.alloc.alloc(32);
    const head = f.driver.add([{ addr: back, len: 32, writable: true }]);
    f.driver.publish();
    const chain = mustPop(f.queue);
    chain.writer.write(new Uint8Array(20).fill(1));
    f.queue.addUsed(chain, chain.writer.bytesWritten);
    expect(f.ringU32(usedEntryAt(f.config.deviceAddr, 0))).toBe(head);
    expect(f.ringU32(usedEntryAt(f.config.deviceAddr, 0) + 4)).toBe(20);
    expect(f.ringU16(usedIdxAt(f.config.deviceAddr))).toBe(0);
    expect(f.driver.takeUsed()).toBeNull();
    f.queue.flush();
    expect(f.ringU16(usedIdxAt(f.config.deviceAddr))).toBe(1);
    expect(f.driver.takeUsed()).toEqual({ id: head, len: 20 });
  });

  it('spec 2.7.8: the used length is clamped to the writable part of the chain', () => {
    const f = splitRing();
    f.driver.add([{ addr: f.alloc.alloc(8), len: 8, writable: false }, { addr: f.alloc.alloc(8), len: 8, writable: true }]);
    f.driver.add([{ addr: f.alloc.alloc(8), len: 8, writable: false }]);
    f.driver.publish();
    f.queue.addUsed(mustPop(f.queue), 1000);
    f.queue.addUsed(mustPop(f.queue), 5);
    f.queue.flush();
    expect(f.driver.takeUsed()?.len).toBe(8);
    expect(f.driver.takeUsed()?.len).toBe(0);
  });

  it('spec 2.7.5.1: never writes to the descriptor table or to device-readable buffers', () => {
    const f = splitRing();
    const out = f.alloc.alloc(64);
    const sent = pattern(f.memory, out, 64, 9);
    f.driver.add([{ addr: out, len: 64, writable: false }, { addr: f.alloc.alloc(64), len: 64, writable: true }]);
    f.driver.publish();
    const table = new Uint8Array(f.memory.slice(f.config.descAddr, splitRingSizes(8).desc)!);
    const chain = mustPop(f.queue);
    chain.writer.fill(64, 0xee);
    f.queue.addUsed(chain, 64);
    f.queue.flush();
    expect(new Uint8Array(f.memory.slice(f.config.descAddr, splitRingSizes(8).desc)!)).toEqual(table);
    expect(new Uint8Array(f.memory.slice(out, 64)!)).toEqual(sent);
  });

  describe('indirect descriptors (spec 2.7.5.3)', () => {
    it('spec 2.7.5.3: follows next links inside the table, starting at entry 0', () => {
      const f = splitRing({ indirect: true });
      const table = f.alloc.alloc(16 * 3, 16);
      const a = f.alloc.alloc(4);
      const b = f.alloc.alloc(4);
      const c = f.alloc.alloc(4);
      f.memory.write(a, Uint8Array.of(1, 2, 3, 4));
      f.memory.write(b, Uint8Array.of(5, 6, 7, 8));
      // Table order 0 -> 2 -> 1: the device follows next, not table order.
      f.driver.writeRaw(table, { addr: a, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 2 });
      f.driver.writeRaw(table + 32, { addr: b, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 });
      f.driver.writeRaw(table + 16, { addr: c, len: 4, flags: VIRTQ_DESC_F_WRITE, next: 0 });
      f.driver.writeDescriptor(5, { addr: table, len: 48, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      f.driver.pushAvail(5);
      f.driver.publish();
      const chain = mustPop(f.queue);
      expect(chain.fault).toBe(0);
      expect(chain.id).toBe(5);
      expect(chain.descriptorCount).toBe(3);
      expect([...chain.reader.slices()].flatMap((s) => [...s])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      chain.writer.writeU32(0x11223344);
      expect(f.memory.getU32(c)).toBe(0x11223344);
    });

    it('spec 2.7.5.3.2: ignores VIRTQ_DESC_F_WRITE on the descriptor that refers to the table', () => {
      const f = splitRing({ indirect: true });
      const table = f.alloc.alloc(16, 16);
      const buf = f.alloc.alloc(8);
      f.driver.writeRaw(table, { addr: buf, len: 8, flags: 0, next: 0 });
      f.driver.writeDescriptor(0, { addr: table, len: 16, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, next: 0 });
      f.driver.pushAvail(0);
      f.driver.publish();
      const chain = mustPop(f.queue);
      expect(chain.fault).toBe(0);
      expect(chain.readableLength).toBe(8);
      expect(chain.writableLength).toBe(0);
    });

    it('spec 2.7.5.3.2: handles direct descriptors followed by one indirect descriptor', () => {
      const f = splitRing({ indirect: true });
      const header = f.alloc.alloc(4);
      const body = f.alloc.alloc(4);
      const status = f.alloc.alloc(1);
      f.memory.write(header, Uint8Array.of(0xde, 0xad, 0xbe, 0xef));
      f.memory.write(body, Uint8Array.of(1, 2, 3, 4));
      const table = f.alloc.alloc(32, 16);
      f.driver.writeRaw(table, { addr: body, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 1 });
      f.driver.writeRaw(table + 16, { addr: status, len: 1, flags: VIRTQ_DESC_F_WRITE, next: 0 });
      f.driver.writeDescriptor(3, { addr: header, len: 4, flags: VIRTQ_DESC_F_NEXT, next: 6 });
      f.driver.writeDescriptor(6, { addr: table, len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      f.driver.pushAvail(3);
      f.driver.publish();
      const chain = mustPop(f.queue);
      expect(chain.fault).toBe(0);
      expect(chain.id).toBe(3);
      expect(chain.readableLength).toBe(8);
      expect(chain.writableLength).toBe(1);
      expect(chain.reader.readU32()).toBe(0xefbeadde);
      expect(chain.reader.readU32()).toBe(0x04030201);
      chain.writer.writeU8(7);
      expect(f.memory.getU8(status)).toBe(7);
    });

    it('spec 2.7.5.3: reads a table that crosses from one memory region into the adjacent one', () => {
      const memory = new GuestMemory([
        { guestAddress: 0, buffer: new ArrayBuffer(0x10000) },
        { guestAddress: 0x10000, buffer: new ArrayBuffer(0x10000) },
      ]);
      const f = splitRing({ indirect: true, memory, window: [0x1000, 0x8000] });
      const table = 0x10000 - 16;
      const a = f.alloc.alloc(2);
      const b = f.alloc.alloc(2);
      f.memory.write(a, Uint8Array.of(1, 2));
      f.memory.write(b, Uint8Array.of(3, 4));
      f.driver.writeRaw(table, { addr: a, len: 2, flags: VIRTQ_DESC_F_NEXT, next: 1 });
      f.driver.writeRaw(table + 16, { addr: b, len: 2, flags: 0, next: 0 });
      f.driver.writeDescriptor(0, { addr: table, len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      f.driver.pushAvail(0);
      f.driver.publish();
      const chain = mustPop(f.queue);
      expect(chain.fault).toBe(0);
      expect([...chain.reader.slices()].flatMap((s) => [...s])).toEqual([1, 2, 3, 4]);
    });
  });

  describe('used buffer notification suppression (spec 2.7.7)', () => {
    it('spec 2.7.7.2: without EVENT_IDX, interrupts when flags is 0 and not when it is VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
      const f = splitRing();
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.flush()).toBe(true);
      expect(f.interrupts).toBe(1);
      f.driver.suppressInterrupts(true);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.flush()).toBe(false);
      expect(f.interrupts).toBe(1);
      expect(f.driver.takeUsed()).not.toBeNull();
      expect(f.driver.takeUsed()).not.toBeNull();
    });

    it('spec 2.7.7.2: without EVENT_IDX, ignores used_event', () => {
      const f = splitRing();
      f.driver.setUsedEvent(100);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.flush()).toBe(true);
    });

    it('spec 2.7.7.2: with EVENT_IDX, interrupts exactly when the used index passes used_event, and ignores flags', () => {
      const f = splitRing({ eventIdx: true, size: 16 });
      f.driver.suppressInterrupts(true);
      const complete = (n: number): boolean => {
        for (let i = 0; i < n; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
        f.driver.publish();
        for (let i = 0; i < n; i++) f.queue.addUsed(mustPop(f.queue), 0);
        const raised = f.queue.flush();
        while (f.driver.takeUsed() !== null);
        return raised;
      };
      // The first publication always notifies: the device has no earlier event to compare with.
      f.driver.setUsedEvent(0);
      expect(complete(1)).toBe(true);
      // used idx goes 1 -> 3: used_event 3 is not yet passed (idx must reach used_event + 1).
      f.driver.setUsedEvent(3);
      expect(complete(2)).toBe(false);
      // 3 -> 4 writes entry 3: notify.
      expect(complete(1)).toBe(true);
      // A batch 4 -> 10 that crosses used_event 6 notifies once.
      f.driver.setUsedEvent(6);
      expect(complete(6)).toBe(true);
      // used_event behind the batch: no notification.
      f.driver.setUsedEvent(2);
      expect(complete(3)).toBe(false);
      expect(f.interrupts).toBe(3);
    });

    it('spec 2.7.7.2: with EVENT_IDX, used_event is compared modulo 2^16 as the used index wraps', () => {
      const f = splitRing({ eventIdx: true, size: 4 });
      const buf = { addr: f.alloc.alloc(1), len: 1, writable: false };
      const step = (): boolean => {
        f.driver.add([buf]);
        f.driver.publish();
        f.queue.addUsed(mustPop(f.queue), 0);
        const raised = f.queue.flush();
        f.driver.takeUsed();
        return raised;
      };
      f.driver.setUsedEvent(0xffff);
      let raisedAt = -1;
      for (let i = 0; i < 0x10002; i++) {
        if (step() && i > 0) {
          expect(raisedAt).toBe(-1);
          raisedAt = i;
        }
      }
      // Entry 0xffff is the 65536th buffer (i = 0xffff); the used index then wraps to 0.
      expect(raisedAt).toBe(0xffff);
      expect(f.ringU16(usedIdxAt(f.config.deviceAddr))).toBe(2);
    });

    it('spec 2.7.8: batching: many completions, one flush, at most one interrupt', () => {
      const f = splitRing({ size: 64 });
      for (let i = 0; i < 40; i++) f.driver.add([{ addr: f.alloc.alloc(8), len: 8, writable: true }]);
      f.driver.publish();
      let chain;
      while ((chain = f.queue.pop()) !== null) f.queue.addUsed(chain, 8);
      expect(f.interrupts).toBe(0);
      expect(f.queue.flush()).toBe(true);
      expect(f.interrupts).toBe(1);
      expect(f.driver.usedPending).toBe(40);
      expect(f.queue.flush()).toBe(false);
      expect(f.interrupts).toBe(1);
    });
  });

  describe('available buffer notification suppression (spec 2.7.10)', () => {
    it('spec 2.7.10.2: without EVENT_IDX, sets only VIRTQ_USED_F_NO_NOTIFY, and clears it when notifications are enabled', () => {
      const f = splitRing();
      const flags = (): number => f.ringU16(f.config.deviceAddr);
      expect(flags()).toBe(0);
      f.queue.disableNotification();
      expect(flags()).toBe(VIRTQ_USED_F_NO_NOTIFY);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(false);
      expect(f.queue.enableNotification()).toBe(true);
      expect(flags()).toBe(0);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(true);
    });

    it('spec 2.7.10.2: with EVENT_IDX, keeps flags 0 and sets avail_event to the next index it will read', () => {
      const f = splitRing({ eventIdx: true });
      const availEvent = (): number => f.ringU16(availEventAt(f.config.deviceAddr, 8));
      f.queue.disableNotification();
      expect(f.ringU16(f.config.deviceAddr)).toBe(0);
      f.queue.enableNotification();
      expect(availEvent()).toBe(0);
      for (let i = 0; i < 3; i++) f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(true);
      for (let i = 0; i < 3; i++) f.queue.addUsed(mustPop(f.queue), 0);
      // The ring is found empty: the device re-arms at index 3.
      expect(f.queue.pop()).toBeNull();
      expect(availEvent()).toBe(3);
      expect(f.ringU16(f.config.deviceAddr)).toBe(0);
      // With notifications disabled, an empty ring does not move avail_event.
      f.queue.flush();
      f.queue.disableNotification();
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(true);
      f.queue.addUsed(mustPop(f.queue), 0);
      expect(f.queue.pop()).toBeNull();
      expect(availEvent()).toBe(3);
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.driver.kickNeeded()).toBe(false);
    });

    it('spec 2.7.10: enableNotification reports buffers that arrived while notifications were off', () => {
      const f = splitRing({ eventIdx: true });
      f.queue.disableNotification();
      expect(f.queue.enableNotification()).toBe(false);
      f.queue.disableNotification();
      f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]);
      f.driver.publish();
      expect(f.queue.enableNotification()).toBe(true);
      expect(f.queue.pop()).not.toBeNull();
    });
  });

  it('spec 2.7.6: available and used indices wrap at 2^16 with the ring never losing a chain', () => {
    const f = splitRing({ size: 4 });
    const buf = f.alloc.alloc(4);
    const rounds = Math.ceil(0x10000 / 3) + 1;
    let mismatches = 0;
    for (let round = 0; round < rounds; round++) {
      const heads = [0, 1, 2].map(() => f.driver.add([{ addr: buf, len: 4, writable: true }]));
      f.driver.publish();
      for (const head of heads) {
        const chain = mustPop(f.queue);
        if (chain.id !== head) mismatches++;
        f.queue.addUsed(chain, 4);
      }
      if (f.queue.pop() !== null) mismatches++;
      f.queue.flush();
      for (const head of heads) {
        const used = f.driver.takeUsed();
        if (used?.id !== head || used.len !== 4) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
    expect(f.corruptions).toEqual([]);
    const total = rounds * 3;
    expect(total).toBeGreaterThan(0x10000);
    expect(f.queue.position()).toMatchObject({ availIndex: total & 0xffff, usedIndex: total & 0xffff });
    expect(f.ringU16(usedIdxAt(f.config.deviceAddr))).toBe(total & 0xffff);
  });

  it('spec 2.7.8: without IN_ORDER, used entries appear in completion order', () => {
    const f = splitRing();
    const heads = [0, 1, 2].map(() => f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: false }]));
    f.driver.publish();
    const chains = [0, 1, 2].map(() => mustPop(f.queue));
    f.queue.addUsed(chains[2]!, 0);
    f.queue.addUsed(chains[0]!, 0);
    f.queue.addUsed(chains[1]!, 0);
    f.queue.flush();
    expect([0, 1, 2].map(() => f.driver.takeUsed()?.id)).toEqual([heads[2], heads[0], heads[1]]);
  });

  it('spec 2.7.9: with IN_ORDER, completions are held back until every earlier chain has completed', () => {
    const f = splitRing({ inOrder: true });
    const heads = [0, 1, 2, 3].map(() => f.driver.add([{ addr: f.alloc.alloc(4), len: 4, writable: true }]));
    f.driver.publish();
    const chains = [0, 1, 2, 3].map(() => mustPop(f.queue));
    f.queue.addUsed(chains[2]!, 3);
    f.queue.addUsed(chains[1]!, 2);
    expect(f.queue.flush()).toBe(false);
    expect(f.driver.usedPending).toBe(0);
    expect(f.queue.inFlight).toBe(4);
    f.queue.addUsed(chains[0]!, 1);
    expect(f.queue.inFlight).toBe(1);
    f.queue.flush();
    expect([0, 1, 2].map(() => f.driver.takeUsed())).toEqual([
      { id: heads[0], len: 1 },
      { id: heads[1], len: 2 },
      { id: heads[2], len: 3 },
    ]);
    f.queue.addUsed(chains[3]!, 4);
    f.queue.flush();
    expect(f.driver.takeUsed()).toEqual({ id: heads[3], len: 4 });
  });
});

describe('legacy big-endian split ring (spec 2.7.3)', () => {
  it('spec 2.7.3: reads and writes every ring field big-endian, as a big-endian guest lays it out', () => {
    // The driver side written with explicit big-endian stores, independently of SplitRingDriver.
    const f = splitFixture({ byteOrder: 'big-endian', size: 4, eventIdx: true, indirect: true });
    const { descAddr, driverAddr, deviceAddr } = f.config;
    const buffer = f.alloc.alloc(16);
    const table = f.alloc.alloc(16, 16);
    const descriptor = (at: number, addr: number, len: number, flags: number): void => {
      const bytes = new DataView(new ArrayBuffer(16));
      bytes.setBigUint64(0, BigInt(addr));
      bytes.setUint32(8, len);
      bytes.setUint16(12, flags);
      f.memory.write(at, new Uint8Array(bytes.buffer));
    };
    descriptor(table, buffer, 16, VIRTQ_DESC_F_WRITE);
    descriptor(descAddr + 3 * 16, table, 16, VIRTQ_DESC_F_INDIRECT);
    // avail: flags 0, idx 1, ring[0] = 3.
    f.memory.write(driverAddr, Uint8Array.of(0, 0, 0, 1, 0, 3));
    const chain = mustPop(f.queue);
    expect(chain).toMatchObject({ id: 3, fault: 0, readableLength: 0, writableLength: 16 });
    chain.writer.writeU8(0xab);
    expect(f.memory.getU8(buffer)).toBe(0xab);
    // Found empty, the ring re-arms: avail_event (after the 4 used entries) is 1.
    expect(f.queue.pop()).toBeNull();
    expect([...f.memory.slice(deviceAddr + 4 + 8 * 4, 2)!]).toEqual([0, 1]);
    f.queue.addUsed(chain, 1);
    expect(f.queue.flush()).toBe(true);
    // used: flags 0, idx 1, ring[0] = { id 3, len 1 }.
    expect([...f.memory.slice(deviceAddr, 12)!]).toEqual([0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1]);
  });
});
