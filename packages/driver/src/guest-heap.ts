/**
 * A first-fit allocator over a window of guest-physical addresses, for the
 * driver's buffers and indirect tables, which come and go with each request
 * (rings are placed once per initialisation with a GuestAllocator). Free ranges
 * are kept sorted and merged, so a long test run does not fragment the window.
 */
export class GuestHeap {
  /** First address of the window. */
  readonly start: number;
  /** One past the last address of the window. */
  readonly end: number;
  /** Free ranges as [start, end), sorted by address, never adjacent. */
  private free: [number, number][];
  private readonly sizes = new Map<number, number>();

  /** Manages [start, end). */
  constructor(start: number, end: number) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start) {
      throw new RangeError(`GuestHeap: [${start}, ${end}) is not a window of guest addresses`);
    }
    this.start = start;
    this.end = end;
    this.free = [[start, end]];
  }

  /** Bytes currently allocated. */
  get used(): number {
    let total = 0;
    for (const len of this.sizes.values()) total += len;
    return total;
  }

  /** Guest address of `len` bytes aligned to `align` (a power of two). Throws when no free range fits. */
  alloc(len: number, align = 1): number {
    if (!Number.isSafeInteger(len) || len < 0 || align < 1 || (align & (align - 1)) !== 0) {
      throw new RangeError(`GuestHeap: cannot allocate ${len} bytes aligned to ${align}`);
    }
    // A zero-length buffer still gets an address of its own, so that free() can find it.
    const size = Math.max(len, 1);
    for (let i = 0; i < this.free.length; i++) {
      const range = this.free[i] as [number, number];
      const addr = Math.ceil(range[0] / align) * align;
      if (addr + size > range[1]) continue;
      const pieces: [number, number][] = [];
      if (addr > range[0]) pieces.push([range[0], addr]);
      if (addr + size < range[1]) pieces.push([addr + size, range[1]]);
      this.free.splice(i, 1, ...pieces);
      this.sizes.set(addr, size);
      return addr;
    }
    throw new RangeError(
      `GuestHeap: no room for ${len} bytes (${this.used} of ${this.end - this.start} in use); complete or reset requests, or give the driver a larger memory window`,
    );
  }

  /** Returns an allocation made by {@link alloc}. Throws if `addr` is not one. */
  release(addr: number): void {
    const size = this.sizes.get(addr);
    if (size === undefined) throw new RangeError(`GuestHeap: 0x${addr.toString(16)} is not an allocation`);
    this.sizes.delete(addr);
    let lo = addr;
    let hi = addr + size;
    let at = this.free.findIndex((r) => r[0] > addr);
    if (at < 0) at = this.free.length;
    const before = this.free[at - 1];
    const after = this.free[at];
    let removeFrom = at;
    let removeCount = 0;
    if (before !== undefined && before[1] === lo) {
      lo = before[0];
      removeFrom = at - 1;
      removeCount++;
    }
    if (after !== undefined && after[0] === hi) {
      hi = after[1];
      removeCount++;
    }
    this.free.splice(removeFrom, removeCount, [lo, hi]);
  }

  /** Forgets every allocation. */
  clear(): void {
    this.sizes.clear();
    this.free = [[this.start, this.end]];
  }
}
