/** A device's register window on a bus. Offsets are relative to the window's base. */
export interface BusDevice {
  /** Fills `data` with the bytes read at `offset` (data.length is the access width). */
  read(offset: number, data: Uint8Array): void;
  /**
   * Applies a write of `data` at `offset`. A promise holds the access: the
   * vCPU stays in its exit until it settles (a virtio-mmio reset finishing
   * in-flight I/O, spec 2.4).
   */
  write(offset: number, data: Uint8Array): void | Promise<void>;
}

/** One registered window. */
export interface BusRange {
  /** First address of the window. */
  readonly base: number;
  /** Length of the window in bytes. */
  readonly size: number;
  /** Who owns the window (for error messages). */
  readonly name: string;
  /** The device the window routes to. */
  readonly device: BusDevice;
}

/** Thrown when a window would overlap one already registered. */
export class BusOverlapError extends Error {
  /** Names both windows with their address ranges; `kind` is the bus the overlap was found on. */
  constructor(kind: string, range: BusRange, other: BusRange) {
    super(
      `${kind} ${range.name} at 0x${range.base.toString(16)}-0x${(range.base + range.size - 1).toString(16)} ` +
        `overlaps ${other.name} at 0x${other.base.toString(16)}-0x${(other.base + other.size - 1).toString(16)}`,
    );
    this.name = 'BusOverlapError';
  }
}

/**
 * An address space of device windows (the port-I/O space or the MMIO
 * space): windows never overlap; an access is routed to the window holding
 * its first byte. Reads nobody claims return all ones, as on a real bus;
 * writes nobody claims are dropped.
 */
export class Bus {
  /** 'pio' or 'mmio', for messages. */
  readonly kind: string;
  private ranges: BusRange[] = [];
  /** Accesses that hit no window (a guest probing for hardware, or a bug). */
  unclaimed = 0;

  /** Creates an empty bus. */
  constructor(kind: string) {
    this.kind = kind;
  }

  /** Registers `device` at [base, base + size). Throws {@link BusOverlapError} on overlap. */
  register(base: number, size: number, device: BusDevice, name: string): BusRange {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size <= 0) {
      throw new RangeError(`${this.kind} window for ${name} has a bad base or size`);
    }
    const range: BusRange = { base, size, name, device };
    for (const other of this.ranges) {
      if (base < other.base + other.size && other.base < base + size) throw new BusOverlapError(this.kind, range, other);
    }
    this.ranges = [...this.ranges, range].sort((a, b) => a.base - b.base);
    return range;
  }

  /** Removes a window returned by {@link register}. */
  unregister(range: BusRange): void {
    this.ranges = this.ranges.filter((r) => r !== range);
  }

  /** The window holding `address`, if any. */
  find(address: number): BusRange | undefined {
    const ranges = this.ranges;
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = ranges[mid] as BusRange;
      if (address < r.base) hi = mid - 1;
      else if (address >= r.base + r.size) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** Routes a read; unclaimed reads return all ones. */
  read(address: number, data: Uint8Array): void {
    const r = this.find(address);
    if (r === undefined) {
      this.unclaimed++;
      data.fill(0xff);
      return;
    }
    r.device.read(address - r.base, data);
  }

  /** Routes a write; unclaimed writes are dropped. Returns the device's promise when it holds the access. */
  write(address: number, data: Uint8Array): void | Promise<void> {
    const r = this.find(address);
    if (r === undefined) {
      this.unclaimed++;
      return undefined;
    }
    return r.device.write(address - r.base, data);
  }
}

/** Little-endian value of an access of up to 4 bytes. */
export function accessValue(data: Uint8Array): number {
  let value = 0;
  for (let i = Math.min(data.length, 4) - 1; i >= 0; i--) value = value * 256 + (data[i] as number);
  return value;
}

/** Stores the low `data.length` (up to 4) bytes of `value` little-endian; bytes beyond 4 read as zero. */
export function setAccessValue(data: Uint8Array, value: number): void {
  for (let i = 0; i < data.length; i++) {
    data[i] = i < 4 ? (value >>> (8 * i)) & 0xff : 0;
  }
}
