import { describe, expect, it } from 'vitest';
import { GuestMemory, GuestMemoryError } from './guest-memory.js';

describe('GuestMemory', () => {
  const twoRegions = (): GuestMemory =>
    new GuestMemory([
      { guestAddress: 0x0, buffer: new ArrayBuffer(0x1000) },
      { guestAddress: 0x1000, buffer: new ArrayBuffer(0x1000) },
      { guestAddress: 0x10000, buffer: new ArrayBuffer(0x1000), readonly: true },
    ]);

  it('refuses overlapping regions', () => {
    expect(() => new GuestMemory([
      { guestAddress: 0, buffer: new ArrayBuffer(0x2000) },
      { guestAddress: 0x1000, buffer: new ArrayBuffer(0x1000) },
    ])).toThrow(/overlap/);
  });

  it('checks ranges across adjacent regions, holes and read-only regions without throwing', () => {
    const m = twoRegions();
    expect(m.checkRange(0xff0, 0x20)).toBe(true);
    expect(m.checkRange(0x1ff0, 0x20)).toBe(false);
    expect(m.checkRange(0x10000, 0x1000, 'read')).toBe(true);
    expect(m.checkRange(0x10000, 1, 'write')).toBe(false);
    expect(m.checkRange(Number.MAX_SAFE_INTEGER, 2)).toBe(false);
    expect(m.checkRange(-1, 1)).toBe(false);
    expect(m.checkRange(0.5, 1)).toBe(false);
  });

  it('splits zero-copy slices at region boundaries', () => {
    const m = twoRegions();
    const parts = m.slices(0xffe, 4);
    expect(parts?.map((p) => p.length)).toEqual([2, 2]);
    parts?.[1]?.fill(0xab);
    expect(m.getU8(0x1000)).toBe(0xab);
    expect(m.slice(0xffe, 4)).toBeUndefined();
  });

  it('reads and writes little-endian values and throws GuestMemoryError outside', () => {
    const m = twoRegions();
    m.setU32(0x1004, 0x11223344);
    expect(m.getU8(0x1004)).toBe(0x44);
    m.setU64(0xffc, 0x0102030405060708n);
    expect(m.getU64(0xffc)).toBe(0x0102030405060708n);
    expect(() => m.getU32(0x1ffe)).toThrow(GuestMemoryError);
    expect(() => m.setU8(0x10000, 1)).toThrow(GuestMemoryError);
  });
});
