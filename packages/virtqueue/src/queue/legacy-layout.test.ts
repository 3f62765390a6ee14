import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../memory/guest-memory.js';
import { queueConfigProblem } from './create.js';
import { legacySplitRingLayout } from './legacy-layout.js';

/** The spec's virtq_size() rounding (spec 2.7.2), with the mask written as Linux's vring_size() has it. */
const alignUp = (x: number, align: number): number => Math.floor((x + align - 1) / align) * align;

describe('legacySplitRingLayout (spec 2.7.2)', () => {
  it('puts the available ring right after the descriptors and the used ring on the next Queue Align boundary', () => {
    // A 256-entry queue at page 0x10 as a legacy PCI driver places it: 4 KiB of descriptors,
    // 518 bytes of available ring, the used ring on the following page.
    expect(legacySplitRingLayout(0x10000, 256, 4096)).toEqual({ size: 256, descAddr: 0x10000, driverAddr: 0x11000, deviceAddr: 0x12000 });
    // An available ring that ends exactly on a boundary (16 + 8 bytes, Queue Align 8) is followed by the used ring at once.
    expect(legacySplitRingLayout(0, 1, 8)).toEqual({ size: 1, descAddr: 0, driverAddr: 16, deviceAddr: 24 });
  });

  it('aligns the guest-physical address, not the offset from the base (legacy MMIO: GuestPageSize below QueueAlign)', () => {
    // Page frame 1 of 1 KiB pages with QueueAlign 4096, as vring_init aligns it.
    expect(legacySplitRingLayout(0x400, 8, 4096)).toEqual({ size: 8, descAddr: 0x400, driverAddr: 0x480, deviceAddr: 0x1000 });
  });

  it('matches the spec formula and gives areas the split ring accepts, for every size and alignment', () => {
    const memory = GuestMemory.create(64 << 20);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 2, max: 16 }), fc.integer({ min: 0, max: 64 }), (sizeLog, alignLog, page) => {
        const size = 2 ** sizeLog;
        const align = 2 ** alignLog;
        // A legacy queue starts on a page, and descriptors need 16-byte alignment (spec 2.7).
        const base = page * Math.max(align, 16);
        const layout = legacySplitRingLayout(base, size, align);
        expect(layout.descAddr).toBe(base);
        expect(layout.driverAddr).toBe(base + 16 * size);
        expect(layout.deviceAddr - base).toBe(alignUp(16 * size + 2 * (3 + size), align));
        // The whole queue is the spec's virtq_size(): the used ring (flags, idx, ring, avail_event) fits in it.
        const total = alignUp(16 * size + 2 * (3 + size), align) + alignUp(2 * 3 + 8 * size, align);
        expect(layout.deviceAddr + 6 + 8 * size).toBeLessThanOrEqual(base + total);
        if (base + total <= memory.size) expect(queueConfigProblem(memory, layout, false)).toBeUndefined();
      }),
    );
  });
});
