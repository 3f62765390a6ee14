import { PciBaseAddress } from './constants.js';

/** The address space and width of a base address register ([PCI] 6.2.5.1). */
export type PciBarKind = 'io' | 'memory32' | 'memory64';

/** What the transport keeps behind a BAR. */
export type PciBarPurpose =
  /** The legacy virtio header and device configuration of a transitional device (spec 4.1.4.10). */
  | 'legacy'
  /** The MSI-X table and pending bit array. */
  | 'msix'
  /** The device's shared memory regions (spec 2.10, 4.1.4.7). */
  | 'shared-memory'
  /** Common configuration, ISR status, device configuration and notifications (spec 4.1.4). */
  | 'virtio';

/** A BAR as the VMM sees it: its layout and where the guest put it. */
export interface PciBar {
  /** BAR number, 0-5 (a 64-bit BAR also occupies the next register). */
  readonly index: number;
  /** Address space and width. */
  readonly kind: PciBarKind;
  /** The region has no read side effects and may be prefetched. */
  readonly prefetchable: boolean;
  /** Size in bytes, a power of two. */
  readonly size: number;
  /** What the BAR holds. */
  readonly purpose: PciBarPurpose;
  /**
   * Guest-physical address (memory BARs) or port (I/O BARs) while the function
   * decodes the BAR: the BAR is programmed to a usable address and the command
   * register enables its address space. Undefined otherwise.
   */
  readonly address: number | undefined;
}

const TWO_32 = 0x1_0000_0000;
/** I/O space on the platforms this targets is 64 KiB. */
const IO_SPACE_END = 0x1_0000;

/**
 * One base address register: its sizing behaviour (the address bits below
 * the size read back as zero, so writing all ones and reading back yields the
 * size mask), its fixed type bits, and the address the guest programmed.
 */
export class Bar implements PciBar {
  /** The BAR's number (0-5); a 64-bit BAR also takes the next register. */
  readonly index: number;
  /** I/O, 32-bit or 64-bit memory. */
  readonly kind: PciBarKind;
  /** Whether the memory BAR says prefetchable. */
  readonly prefetchable: boolean;
  /** Size in bytes, a power of two. */
  readonly size: number;
  /** What the BAR holds. */
  readonly purpose: PciBarPurpose;
  /** Decoded address, maintained by the transport through {@link Bar.decode}. */
  address: number | undefined;
  /** The type bits in the low dword ([PCI] 6.2.5.1), read-only. */
  private readonly flags: number;
  private low = 0;
  private high = 0;

  /** A BAR of `size` bytes (a power of two: at least 16 for memory, 4 for I/O). */
  constructor(index: number, kind: PciBarKind, size: number, purpose: PciBarPurpose, prefetchable = false) {
    const minimum = kind === 'io' ? 4 : 16;
    if (!isPowerOfTwo(size) || size < minimum) {
      throw new RangeError(`BAR ${index}: size ${size} is not a power of two of at least ${minimum}`);
    }
    if (kind === 'io' && size > 256) throw new RangeError(`BAR ${index}: an I/O BAR holds at most 256 bytes, not ${size}`);
    if (kind === 'memory32' && size > 0x8000_0000) throw new RangeError(`BAR ${index}: ${size} bytes need a 64-bit BAR`);
    this.index = index;
    this.kind = kind;
    this.size = size;
    this.purpose = purpose;
    this.prefetchable = prefetchable && kind !== 'io';
    this.flags =
      kind === 'io' ? PciBaseAddress.SPACE_IO : (kind === 'memory64' ? PciBaseAddress.MEM_TYPE_64 : 0) | (this.prefetchable ? PciBaseAddress.MEM_PREFETCH : 0);
    this.address = undefined;
  }

  /** Number of 32-bit registers the BAR occupies. */
  get registers(): 1 | 2 {
    return this.kind === 'memory64' ? 2 : 1;
  }

  /** The value of register `dword` (0: low, 1: high half of a 64-bit BAR). */
  read(dword: number): number {
    return dword === 0 ? (this.low | this.flags) >>> 0 : this.high;
  }

  /** A driver write of a whole register: address bits below the size are hard-wired to zero. */
  write(dword: number, value: number): void {
    if (dword === 0) {
      const typeBits = this.kind === 'io' ? 0x3 : 0xf;
      // Sizes above 4 GiB keep every low-dword address bit at zero.
      const lowMask = this.size >= TWO_32 ? 0 : ~(this.size - 1) & ~typeBits;
      this.low = (value & lowMask) >>> 0;
    } else if (this.kind === 'memory64') {
      const highMask = this.size > TWO_32 ? ~(this.size / TWO_32 - 1) : 0xffffffff;
      this.high = (value & highMask) >>> 0;
    }
  }

  /** Forgets the programmed address (reset); the transport then re-decodes. */
  clear(): void {
    this.low = 0;
    this.high = 0;
  }

  /**
   * The programmed base if it is usable: not 0 (unassigned), the whole BAR
   * below the top of its address space (which also excludes the all-ones
   * sizing pattern), and below 2^53 so it is exact as a number.
   */
  programmedAddress(): number | undefined {
    const base = this.kind === 'memory64' ? this.high * TWO_32 + this.low : this.low;
    if (base === 0) return undefined;
    const limit = this.kind === 'io' ? IO_SPACE_END : this.kind === 'memory32' ? TWO_32 - 1 : Number.MAX_SAFE_INTEGER;
    return base + this.size <= limit ? base : undefined;
  }
}

/** True for 1, 2, 4, ... up to 2^52. */
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
