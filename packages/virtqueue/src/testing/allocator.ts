/**
 * Places guest buffers at scattered addresses inside a window of guest memory,
 * with random gaps, so that tests exercise more than neatly packed layouts.
 * Deterministic for a given seed.
 */
export class GuestAllocator {
  private cursor: number;
  private state: number;
  private readonly start: number;
  private readonly end: number;
  private readonly maxGap: number;

  /**
   * Allocates from [start, end). `maxGap` bounds the random gap left before each
   * allocation (0 packs buffers tightly).
   */
  constructor(start: number, end: number, options: { seed?: number; maxGap?: number } = {}) {
    this.start = start;
    this.end = end;
    this.cursor = start;
    this.state = (options.seed ?? 0x9e3779b9) >>> 0 || 1;
    this.maxGap = options.maxGap ?? 256;
  }

  /** Guest address of `len` fresh bytes aligned to `align`; throws when the window is exhausted. */
  alloc(len: number, align = 1): number {
    const gap = this.maxGap > 0 ? this.next() % (this.maxGap + 1) : 0;
    const addr = alignUp(this.cursor + gap, align);
    if (addr + len > this.end) throw new RangeError(`GuestAllocator: no room for ${len} bytes`);
    this.cursor = addr + len;
    return addr;
  }

  /** Forgets every allocation. */
  reset(): void {
    this.cursor = this.start;
  }

  /** A pseudo-random u32 (xorshift32). */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
}

/** Rounds `value` up to a multiple of `align`. */
export function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}
