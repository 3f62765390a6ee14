import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestHeap } from './guest-heap.js';

type Op = { kind: 'alloc'; len: number; align: number } | { kind: 'release'; pick: number };

const ops = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('alloc' as const), len: fc.integer({ min: 0, max: 300 }), align: fc.constantFrom(1, 2, 8, 16, 64) }),
    fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  ),
  { maxLength: 200 },
);

describe('GuestHeap', () => {
  it('allocations stay inside the window, aligned, and never overlap; releasing everything restores the whole window', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1 << 20 }), ops, (start, script: Op[]) => {
        const end = start + 4096;
        const heap = new GuestHeap(start, end);
        const live = new Map<number, number>();
        for (const op of script) {
          if (op.kind === 'release') {
            const addrs = [...live.keys()];
            const addr = addrs[op.pick % Math.max(addrs.length, 1)];
            if (addr === undefined) continue;
            heap.release(addr);
            live.delete(addr);
            continue;
          }
          let addr: number;
          try {
            addr = heap.alloc(op.len, op.align);
          } catch (error) {
            expect(error).toBeInstanceOf(RangeError);
            continue;
          }
          const size = Math.max(op.len, 1);
          expect(addr % op.align).toBe(0);
          expect(addr).toBeGreaterThanOrEqual(start);
          expect(addr + size).toBeLessThanOrEqual(end);
          for (const [other, otherSize] of live) expect(addr + size <= other || other + otherSize <= addr).toBe(true);
          live.set(addr, size);
        }
        for (const addr of live.keys()) heap.release(addr);
        expect(heap.used).toBe(0);
        // Fully merged again: one allocation can take the whole window.
        expect(heap.alloc(4096)).toBe(start);
      }),
    );
  });

  it('refuses to release what it did not allocate', () => {
    const heap = new GuestHeap(0x1000, 0x2000);
    const addr = heap.alloc(16);
    expect(() => heap.release(addr + 1)).toThrow(RangeError);
    heap.release(addr);
    expect(() => heap.release(addr)).toThrow(RangeError);
  });

  it('says what to do when the window is full', () => {
    const heap = new GuestHeap(0, 64);
    heap.alloc(60);
    expect(() => heap.alloc(8)).toThrow(/complete or reset requests, or give the driver a larger memory window/);
  });
});
