/**
 * Guest-physical memory: one or more regions with holes between them, each
 * backed by an ArrayBuffer or SharedArrayBuffer (which may alias native memory,
 * e.g. a koffi view over an mmap'd area). Every access is bounds-checked and
 * overflow-safe; views are zero-copy.
 */

/** How a guest range is going to be accessed; read-only regions refuse `write`. */
export type MemoryAccess = 'read' | 'write';

/** Describes one region of guest memory. */
export interface MemoryRegionInit {
  /** Guest-physical address of the region's first byte. Must be a multiple of 8. */
  readonly guestAddress: number;
  /** The memory behind the region. */
  readonly buffer: ArrayBufferLike;
  /** Offset of the region in `buffer`, a multiple of 8. Defaults to 0. */
  readonly byteOffset?: number;
  /** Size in bytes. Defaults to the rest of `buffer`. */
  readonly size?: number;
  /** The guest may read but the device may not write (a ROM). */
  readonly readonly?: boolean;
}

/** Thrown by accessors given a range that is not wholly inside guest memory. */
export class GuestMemoryError extends RangeError {
  /** Guest-physical address of the refused access. */
  readonly address: number;
  /** Length of the refused access. */
  readonly length: number;

  /** Creates the error for the refused range. */
  constructor(address: number, length: number, access: MemoryAccess) {
    super(`guest ${access} of ${length} bytes at 0x${address.toString(16)} is outside guest memory`);
    this.name = 'GuestMemoryError';
    this.address = address;
    this.length = length;
  }
}

/** One contiguous region of guest memory. */
export class GuestMemoryRegion {
  /** Guest-physical address of the first byte. */
  readonly guestAddress: number;
  /** Size in bytes. */
  readonly size: number;
  /** Guest-physical address one past the last byte. */
  readonly end: number;
  /** The region's bytes (a zero-copy view of the backing buffer). */
  readonly bytes: Uint8Array;
  /** A DataView over the same bytes, for little-endian scalar access. */
  readonly view: DataView;
  /** Device writes are refused. */
  readonly readonly: boolean;

  /**
   * Checks one region description (alignment, bounds, below 2^53) and views its buffer; GuestMemory
   * builds its regions from the descriptions it is given.
   * @internal
   */
  constructor(init: MemoryRegionInit) {
    const byteOffset = init.byteOffset ?? 0;
    const size = init.size ?? init.buffer.byteLength - byteOffset;
    if (!Number.isSafeInteger(init.guestAddress) || init.guestAddress < 0 || init.guestAddress % 8 !== 0) {
      throw new RangeError(`guest memory region address ${init.guestAddress} must be a non-negative multiple of 8`);
    }
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset % 8 !== 0) {
      throw new RangeError(`guest memory region byteOffset ${byteOffset} must be a non-negative multiple of 8`);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || byteOffset + size > init.buffer.byteLength) {
      throw new RangeError(`guest memory region size ${size} does not fit its buffer`);
    }
    if (init.guestAddress + size > Number.MAX_SAFE_INTEGER) {
      throw new RangeError('guest memory region ends above 2^53');
    }
    this.guestAddress = init.guestAddress;
    this.size = size;
    this.end = init.guestAddress + size;
    this.bytes = new Uint8Array(init.buffer, byteOffset, size);
    this.view = new DataView(init.buffer, byteOffset, size);
    this.readonly = init.readonly ?? false;
  }
}

/** Guest memory made of one or more non-overlapping regions. */
export class GuestMemory {
  /** The regions, sorted by guest address. */
  readonly regions: readonly GuestMemoryRegion[];
  private lastHit = 0;
  private readonly scratch = new DataView(new ArrayBuffer(8));
  private readonly scratchBytes = new Uint8Array(this.scratch.buffer);

  /** Builds guest memory from region descriptions; throws if they overlap. */
  constructor(regions: readonly MemoryRegionInit[]) {
    const built = regions.map((r) => new GuestMemoryRegion(r)).sort((a, b) => a.guestAddress - b.guestAddress);
    for (let i = 1; i < built.length; i++) {
      const prev = built[i - 1] as GuestMemoryRegion;
      const cur = built[i] as GuestMemoryRegion;
      if (cur.guestAddress < prev.end) {
        throw new RangeError(
          `guest memory regions at 0x${prev.guestAddress.toString(16)} and 0x${cur.guestAddress.toString(16)} overlap`,
        );
      }
    }
    this.regions = built;
  }

  /** Convenience: one region of `size` bytes at guest address `guestAddress`, on a fresh ArrayBuffer. */
  static create(size: number, guestAddress = 0): GuestMemory {
    return new GuestMemory([{ guestAddress, buffer: new ArrayBuffer(size) }]);
  }

  /** Total bytes across all regions. */
  get size(): number {
    let total = 0;
    for (const r of this.regions) total += r.size;
    return total;
  }

  /** The region holding guest address `addr`, if any. */
  regionAt(addr: number): GuestMemoryRegion | undefined {
    const regions = this.regions;
    const hit = regions[this.lastHit];
    if (hit !== undefined && addr >= hit.guestAddress && addr < hit.end) return hit;
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i] as GuestMemoryRegion;
      if (addr >= r.guestAddress && addr < r.end) {
        this.lastHit = i;
        return r;
      }
    }
    return undefined;
  }

  /**
   * Index of the region wholly containing [addr, addr + len), or -1. The
   * arithmetic stays exact because both values are checked to be safe integers
   * before they are added.
   */
  regionIndexOf(addr: number, len: number, access: MemoryAccess = 'read'): number {
    if (!isRange(addr, len)) return -1;
    const regions = this.regions;
    const end = addr + len;
    const hit = regions[this.lastHit];
    if (hit !== undefined && addr >= hit.guestAddress && end <= hit.end) {
      return access === 'write' && hit.readonly ? -1 : this.lastHit;
    }
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i] as GuestMemoryRegion;
      if (addr >= r.guestAddress && end <= r.end) {
        if (access === 'write' && r.readonly) return -1;
        this.lastHit = i;
        return i;
      }
    }
    return -1;
  }

  /** True when every byte of [addr, addr + len) is guest memory allowing `access`. Never throws. */
  checkRange(addr: number, len: number, access: MemoryAccess = 'read'): boolean {
    if (!isRange(addr, len)) return false;
    if (len === 0) return this.regionAt(addr) !== undefined || this.isRegionEnd(addr);
    let cursor = addr;
    const end = addr + len;
    while (cursor < end) {
      const r = this.regionAt(cursor);
      if (r === undefined || (access === 'write' && r.readonly)) return false;
      cursor = r.end;
    }
    return true;
  }

  /** A zero-copy view of [addr, addr + len) if it lies in a single region, else undefined. */
  slice(addr: number, len: number, access: MemoryAccess = 'read'): Uint8Array | undefined {
    const i = this.regionIndexOf(addr, len, access);
    if (i < 0) return undefined;
    const r = this.regions[i] as GuestMemoryRegion;
    const off = addr - r.guestAddress;
    return r.bytes.subarray(off, off + len);
  }

  /**
   * Zero-copy views covering [addr, addr + len), split where the range crosses
   * from one region into an adjacent one; undefined if any byte is outside.
   */
  slices(addr: number, len: number, access: MemoryAccess = 'read'): Uint8Array[] | undefined {
    if (!this.checkRange(addr, len, access)) return undefined;
    const out: Uint8Array[] = [];
    let cursor = addr;
    const end = addr + len;
    while (cursor < end) {
      const r = this.regionAt(cursor) as GuestMemoryRegion;
      const stop = Math.min(end, r.end);
      out.push(r.bytes.subarray(cursor - r.guestAddress, stop - r.guestAddress));
      cursor = stop;
    }
    return out;
  }

  /** Copies guest bytes at `addr` into `dst`. Throws {@link GuestMemoryError} if outside. */
  read(addr: number, dst: Uint8Array): void {
    const parts = this.slices(addr, dst.length, 'read');
    if (parts === undefined) throw new GuestMemoryError(addr, dst.length, 'read');
    let off = 0;
    for (const p of parts) {
      dst.set(p, off);
      off += p.length;
    }
  }

  /** Copies `src` into guest memory at `addr`. Throws {@link GuestMemoryError} if outside. */
  write(addr: number, src: Uint8Array): void {
    const parts = this.slices(addr, src.length, 'write');
    if (parts === undefined) throw new GuestMemoryError(addr, src.length, 'write');
    let off = 0;
    for (const p of parts) {
      p.set(src.subarray(off, off + p.length));
      off += p.length;
    }
  }

  /** Fills [addr, addr + len) with `value`. Throws {@link GuestMemoryError} if outside. */
  fill(addr: number, len: number, value = 0): void {
    const parts = this.slices(addr, len, 'write');
    if (parts === undefined) throw new GuestMemoryError(addr, len, 'write');
    for (const p of parts) p.fill(value);
  }

  /** Reads a byte. */
  getU8(addr: number): number {
    const i = this.regionIndexOf(addr, 1, 'read');
    if (i < 0) return this.spanning(addr, 1).getUint8(0);
    const r = this.regions[i] as GuestMemoryRegion;
    return r.view.getUint8(addr - r.guestAddress);
  }

  /** Reads a little-endian u16. */
  getU16(addr: number): number {
    const i = this.regionIndexOf(addr, 2, 'read');
    if (i < 0) return this.spanning(addr, 2).getUint16(0, true);
    const r = this.regions[i] as GuestMemoryRegion;
    return r.view.getUint16(addr - r.guestAddress, true);
  }

  /** Reads a little-endian u32. */
  getU32(addr: number): number {
    const i = this.regionIndexOf(addr, 4, 'read');
    if (i < 0) return this.spanning(addr, 4).getUint32(0, true);
    const r = this.regions[i] as GuestMemoryRegion;
    return r.view.getUint32(addr - r.guestAddress, true);
  }

  /** Reads a little-endian u64. */
  getU64(addr: number): bigint {
    const i = this.regionIndexOf(addr, 8, 'read');
    if (i < 0) return this.spanning(addr, 8).getBigUint64(0, true);
    const r = this.regions[i] as GuestMemoryRegion;
    return r.view.getBigUint64(addr - r.guestAddress, true);
  }

  /** Writes a byte. */
  setU8(addr: number, value: number): void {
    const i = this.regionIndexOf(addr, 1, 'write');
    if (i < 0) {
      this.scratch.setUint8(0, value);
      this.write(addr, this.scratchBytes.subarray(0, 1));
      return;
    }
    const r = this.regions[i] as GuestMemoryRegion;
    r.view.setUint8(addr - r.guestAddress, value);
  }

  /** Writes a little-endian u16. */
  setU16(addr: number, value: number): void {
    const i = this.regionIndexOf(addr, 2, 'write');
    if (i < 0) {
      this.scratch.setUint16(0, value, true);
      this.write(addr, this.scratchBytes.subarray(0, 2));
      return;
    }
    const r = this.regions[i] as GuestMemoryRegion;
    r.view.setUint16(addr - r.guestAddress, value, true);
  }

  /** Writes a little-endian u32. */
  setU32(addr: number, value: number): void {
    const i = this.regionIndexOf(addr, 4, 'write');
    if (i < 0) {
      this.scratch.setUint32(0, value, true);
      this.write(addr, this.scratchBytes.subarray(0, 4));
      return;
    }
    const r = this.regions[i] as GuestMemoryRegion;
    r.view.setUint32(addr - r.guestAddress, value, true);
  }

  /** Writes a little-endian u64. */
  setU64(addr: number, value: bigint): void {
    const i = this.regionIndexOf(addr, 8, 'write');
    if (i < 0) {
      this.scratch.setBigUint64(0, value, true);
      this.write(addr, this.scratchBytes.subarray(0, 8));
      return;
    }
    const r = this.regions[i] as GuestMemoryRegion;
    r.view.setBigUint64(addr - r.guestAddress, value, true);
  }

  private isRegionEnd(addr: number): boolean {
    for (const r of this.regions) if (r.end === addr) return true;
    return false;
  }

  /** A value that crosses from one region into the next (or is outside: then this throws). */
  private spanning(addr: number, len: number): DataView {
    this.read(addr, this.scratchBytes.subarray(0, len));
    return this.scratch;
  }
}

/** True when addr and len are non-negative safe integers whose sum stays below 2^53. */
export function isRange(addr: number, len: number): boolean {
  return (
    Number.isSafeInteger(addr) && Number.isSafeInteger(len) && addr >= 0 && len >= 0 && addr <= Number.MAX_SAFE_INTEGER - len
  );
}
