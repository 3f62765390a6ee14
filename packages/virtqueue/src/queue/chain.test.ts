import { describe, expect, it } from 'vitest';
import { mustPop, pattern, ringFixture } from '../../test/harness.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { ChainUnderrunError } from './cursor.js';

/** [0, 64 KiB) and [64 KiB, 128 KiB) as two adjacent regions on separate buffers, then a ROM after a hole. */
function splitMemory(shared: boolean): GuestMemory {
  const make = (n: number): ArrayBufferLike => (shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
  return new GuestMemory([
    { guestAddress: 0, buffer: make(0x10000) },
    { guestAddress: 0x10000, buffer: make(0x10000) },
    { guestAddress: 0x40000, buffer: make(0x1000), readonly: true },
  ]);
}

describe.each([false, true])('chain reader and writer (packed=%s)', (packed) => {
  it('reads little-endian values that straddle descriptors, and reports what remains', () => {
    const f = ringFixture(packed, { size: 8 });
    const lens = [1, 3, 5, 7];
    const bufs = lens.map((len) => ({ addr: f.alloc.alloc(len), len, writable: false }));
    const bytes = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    let off = 0;
    for (const b of bufs) {
      f.memory.write(b.addr, bytes.subarray(off, off + b.len));
      off += b.len;
    }
    f.driver.add(bufs);
    f.driver.publish();
    const r = mustPop(f.queue).reader;
    const view = new DataView(bytes.buffer);
    expect(r.remaining).toBe(16);
    expect(r.readU8()).toBe(1);
    expect(r.readU16()).toBe(view.getUint16(1, true));
    expect(r.readU32()).toBe(view.getUint32(3, true));
    r.skip(1);
    expect(r.position).toBe(8);
    expect(r.readU64()).toBe(view.getBigUint64(8, true));
    expect(r.remaining).toBe(0);
    expect(() => r.readU8()).toThrow(ChainUnderrunError);
  });

  it('refuses to read or skip past the end without moving the cursor', () => {
    const f = ringFixture(packed);
    f.driver.add([{ addr: f.alloc.alloc(3), len: 3, writable: false }]);
    f.driver.publish();
    const r = mustPop(f.queue).reader;
    expect(() => r.readU32()).toThrow(/4 bytes requested but only 3 remain in the readable part/);
    expect(() => r.skip(4)).toThrow(ChainUnderrunError);
    expect(() => r.skip(-1)).toThrow(ChainUnderrunError);
    expect(() => r.slices(4)).toThrow(ChainUnderrunError);
    expect(r.remaining).toBe(3);
    expect(r.read(new Uint8Array(10))).toBe(3);
    expect(r.read(new Uint8Array(10))).toBe(0);
  });

  it('writes values and byte runs across descriptors; bytesWritten is the length to report', () => {
    const f = ringFixture(packed, { size: 8 });
    const bufs = [2, 6, 9].map((len) => ({ addr: f.alloc.alloc(len), len, writable: true }));
    f.driver.add(bufs);
    f.driver.publish();
    const chain = mustPop(f.queue);
    const w = chain.writer;
    w.writeU8(0xaa);
    w.writeU16(0xbbcc);
    w.writeU32(0x11223344);
    w.writeU64(0x0102030405060708n);
    expect(w.write(Uint8Array.of(9, 9, 9, 9))).toBe(2);
    expect(w.bytesWritten).toBe(17);
    expect(w.remaining).toBe(0);
    expect(() => w.writeU8(0)).toThrow(ChainUnderrunError);
    const got = new Uint8Array(17);
    let off = 0;
    for (const b of bufs) {
      got.set(f.memory.slice(b.addr, b.len) as Uint8Array, off);
      off += b.len;
    }
    expect([...got]).toEqual([0xaa, 0xcc, 0xbb, 0x44, 0x33, 0x22, 0x11, 8, 7, 6, 5, 4, 3, 2, 1, 9, 9]);
  });

  it('fill writes a run of one value and refuses to run past the end', () => {
    const f = ringFixture(packed);
    const bufs = [{ addr: f.alloc.alloc(3), len: 3, writable: true }, { addr: f.alloc.alloc(3), len: 3, writable: true }];
    f.driver.add(bufs);
    f.driver.publish();
    const w = mustPop(f.queue).writer;
    w.fill(5, 0x7e);
    expect(() => w.fill(2)).toThrow(ChainUnderrunError);
    w.fill(1);
    expect([...(f.memory.slice(bufs[0]!.addr, 3) as Uint8Array), ...(f.memory.slice(bufs[1]!.addr, 3) as Uint8Array)]).toEqual([0x7e, 0x7e, 0x7e, 0x7e, 0x7e, 0]);
  });

  it.each([false, true])('slices are zero-copy views of guest memory, split where a buffer crosses regions (shared=%s)', (shared) => {
    const memory = splitMemory(shared);
    const f = ringFixture(packed, { memory, window: [0x1000, 0xf000] });
    const out = { addr: 0x10000 - 6, len: 10, writable: false };
    const back = { addr: 0x10000 - 4, len: 8, writable: true };
    const sent = pattern(memory, out.addr, out.len, 3);
    f.driver.add([out, back]);
    f.driver.publish();
    const chain = mustPop(f.queue);
    const parts = chain.reader.slices();
    expect(parts.map((p) => p.length)).toEqual([6, 4]);
    expect(parts[0]!.buffer).toBe(memory.regions[0]!.bytes.buffer);
    expect(parts[1]!.buffer).toBe(memory.regions[1]!.bytes.buffer);
    expect(Uint8Array.of(...parts[0]!, ...parts[1]!)).toEqual(sent);
    const w = chain.writer.slices(8);
    expect(w.map((p) => p.length)).toEqual([4, 4]);
    w[0]!.fill(1);
    w[1]!.fill(2);
    expect(memory.getU64(back.addr)).toBe(0x0202020201010101n);
  });

  it('reads values that straddle two regions inside one buffer', () => {
    const memory = splitMemory(false);
    const f = ringFixture(packed, { memory, window: [0x1000, 0xf000] });
    memory.setU64(0x10000 - 3, 0x8877665544332211n);
    f.driver.add([{ addr: 0x10000 - 3, len: 8, writable: false }, { addr: 0x10000 - 1, len: 2, writable: true }]);
    f.driver.publish();
    const chain = mustPop(f.queue);
    expect(chain.reader.readU64()).toBe(0x8877665544332211n);
    chain.writer.writeU16(0xbeef);
    expect(memory.getU16(0x10000 - 1)).toBe(0xbeef);
  });

  it('spec 2.7.5.1: a device-readable buffer may lie in read-only memory', () => {
    const memory = splitMemory(false);
    const f = ringFixture(packed, { memory, window: [0x1000, 0xf000] });
    f.driver.add([{ addr: 0x40000, len: 16, writable: false }]);
    f.driver.publish();
    const chain = mustPop(f.queue);
    expect(chain.fault).toBe(0);
    expect(chain.reader.readU64()).toBe(0n);
  });
});
