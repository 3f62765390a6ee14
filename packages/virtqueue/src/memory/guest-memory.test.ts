import { describe, expect, it } from 'vitest';
import { GuestMemory, GuestMemoryError, isRange } from './guest-memory.js';

/** RAM [0, 4 KiB) and [4 KiB, 8 KiB) on separate buffers, a hole, then a ROM at 64 KiB. */
const twoRegions = (): GuestMemory =>
  new GuestMemory([
    { guestAddress: 0x10000, buffer: new ArrayBuffer(0x1000), readonly: true },
    { guestAddress: 0x1000, buffer: new ArrayBuffer(0x1000) },
    { guestAddress: 0x0, buffer: new ArrayBuffer(0x1000) },
  ]);

describe('GuestMemory', () => {
  it('sorts regions by address and refuses overlapping ones', () => {
    const m = twoRegions();
    expect(m.regions.map((r) => r.guestAddress)).toEqual([0, 0x1000, 0x10000]);
    expect(m.size).toBe(0x3000);
    expect(
      () =>
        new GuestMemory([
          { guestAddress: 0, buffer: new ArrayBuffer(0x2000) },
          { guestAddress: 0x1000, buffer: new ArrayBuffer(0x1000) },
        ]),
    ).toThrow(/overlap/);
  });

  it('refuses malformed regions', () => {
    const buffer = new ArrayBuffer(0x100);
    expect(() => new GuestMemory([{ guestAddress: 4, buffer }])).toThrow(/multiple of 8/);
    expect(() => new GuestMemory([{ guestAddress: -8, buffer }])).toThrow(/multiple of 8/);
    expect(() => new GuestMemory([{ guestAddress: 0, buffer, byteOffset: 4 }])).toThrow(/byteOffset/);
    expect(() => new GuestMemory([{ guestAddress: 0, buffer, byteOffset: 0x80, size: 0x81 }])).toThrow(/does not fit/);
    expect(() => new GuestMemory([{ guestAddress: 0, buffer, size: 0 }])).toThrow(/does not fit/);
    expect(() => new GuestMemory([{ guestAddress: 2 ** 53 - 8, buffer }])).toThrow(/2\^53/);
  });

  it('aliases part of a larger buffer (e.g. a view of native memory) without copying', () => {
    const backing = new SharedArrayBuffer(0x3000);
    const m = new GuestMemory([{ guestAddress: 0x100000, buffer: backing, byteOffset: 0x1000, size: 0x1000 }]);
    new Uint8Array(backing)[0x1004] = 0x5a;
    expect(m.getU8(0x100004)).toBe(0x5a);
    m.setU32(0x100ffc, 0xcafef00d);
    expect(new DataView(backing).getUint32(0x1ffc, true)).toBe(0xcafef00d);
    expect(() => m.getU8(0x101000)).toThrow(GuestMemoryError);
    expect(() => m.getU8(0xfffff)).toThrow(GuestMemoryError);
  });

  it('checks ranges across adjacent regions, holes and read-only regions without throwing', () => {
    const m = twoRegions();
    expect(m.checkRange(0xff0, 0x20)).toBe(true);
    expect(m.checkRange(0, 0x2000)).toBe(true);
    expect(m.checkRange(0x1ff0, 0x20)).toBe(false);
    expect(m.checkRange(0x2000, 0)).toBe(true);
    expect(m.checkRange(0x2001, 0)).toBe(false);
    expect(m.checkRange(0x10000, 0x1000, 'read')).toBe(true);
    expect(m.checkRange(0x10000, 1, 'write')).toBe(false);
    expect(m.checkRange(0xfff, 2, 'write')).toBe(true);
  });

  it('is overflow-safe: negative, fractional, non-finite and huge addresses and lengths are outside', () => {
    const m = twoRegions();
    for (const [addr, len] of [
      [Number.MAX_SAFE_INTEGER, 2],
      [2 ** 53, 1],
      [-1, 1],
      [0.5, 1],
      [0, 0.5],
      [0, -1],
      [NaN, 1],
      [0, Infinity],
      [Infinity, 0],
      [0x1000, 2 ** 64],
    ] as const) {
      expect(isRange(addr, len) && m.checkRange(addr, len)).toBe(false);
      expect(m.slice(addr, len)).toBeUndefined();
      expect(m.slices(addr, len)).toBeUndefined();
      expect(m.regionIndexOf(addr, len)).toBe(-1);
    }
    expect(() => m.read(-1, new Uint8Array(1))).toThrow(GuestMemoryError);
    expect(() => m.getU16(Number.MAX_SAFE_INTEGER)).toThrow(GuestMemoryError);
  });

  it('finds the region holding an address', () => {
    const m = twoRegions();
    expect(m.regionAt(0x1fff)?.guestAddress).toBe(0x1000);
    expect(m.regionAt(0x2000)).toBeUndefined();
    expect(m.regionAt(0x10fff)?.readonly).toBe(true);
    expect(m.regionIndexOf(0x10000, 16, 'write')).toBe(-1);
    expect(m.regionIndexOf(0x10000, 16, 'read')).toBe(2);
  });

  it('splits zero-copy slices at region boundaries', () => {
    const m = twoRegions();
    const parts = m.slices(0xffe, 4);
    expect(parts?.map((p) => p.length)).toEqual([2, 2]);
    parts?.[1]?.fill(0xab);
    expect(m.getU8(0x1000)).toBe(0xab);
    expect(m.slice(0xffe, 4)).toBeUndefined();
    const one = m.slice(0x1000, 4);
    expect(one?.buffer).toBe(m.regions[1]?.bytes.buffer);
    expect(m.slices(0x1000, 0)).toEqual([]);
    expect(m.slice(0x10000, 4, 'write')).toBeUndefined();
  });

  it('reads and writes little-endian values, also across adjacent regions', () => {
    const m = twoRegions();
    m.setU32(0x1004, 0x11223344);
    expect(m.getU8(0x1004)).toBe(0x44);
    expect(m.getU16(0x1006)).toBe(0x1122);
    m.setU64(0xffc, 0x0102030405060708n);
    expect(m.getU64(0xffc)).toBe(0x0102030405060708n);
    expect(m.getU32(0xffe)).toBe(0x03040506);
    m.setU16(0xfff, 0xbeef);
    expect(m.getU8(0xfff)).toBe(0xef);
    expect(m.getU8(0x1000)).toBe(0xbe);
    m.setU8(0x1fff, 0x80);
    expect(m.getU8(0x1fff)).toBe(0x80);
    m.setU32(0xffd, 0xa1b2c3d4);
    expect(m.getU32(0xffd)).toBe(0xa1b2c3d4);
  });

  it('copies bytes in and out across regions, and fills', () => {
    const m = twoRegions();
    const data = Uint8Array.from({ length: 32 }, (_, i) => i);
    m.write(0xff0, data);
    const back = new Uint8Array(32);
    m.read(0xff0, back);
    expect(back).toEqual(data);
    m.fill(0xff8, 16, 0xee);
    m.read(0xff0, back);
    expect([...back.subarray(8, 24)]).toEqual(new Array(16).fill(0xee));
    expect(back[24]).toBe(24);
  });

  it('throws GuestMemoryError, naming the access, outside guest memory and for writes to read-only memory', () => {
    const m = twoRegions();
    expect(() => m.getU32(0x1ffe)).toThrow(GuestMemoryError);
    expect(() => m.getU8(0x5000)).toThrow(/guest read of 1 bytes at 0x5000 is outside guest memory/);
    expect(() => m.setU8(0x10000, 1)).toThrow(/guest write of 1 bytes at 0x10000/);
    expect(() => m.write(0x1ff0, new Uint8Array(32))).toThrow(GuestMemoryError);
    expect(() => m.fill(0x10000, 4)).toThrow(GuestMemoryError);
    expect(m.getU8(0x10000)).toBe(0);
    let caught: unknown;
    try {
      m.getU64(0x2000);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ name: 'GuestMemoryError', address: 0x2000, length: 8 });
    // A refused write spanning two regions leaves the first one untouched.
    expect(() => m.write(0x1ffe, Uint8Array.of(1, 2, 3, 4))).toThrow(GuestMemoryError);
    expect(m.getU16(0x1ffe)).toBe(0);
  });
});
