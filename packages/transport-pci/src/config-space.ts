import { PCI_CONFIG_SPACE_SIZE, PciConfig, PciStatus } from './constants.js';

/**
 * The bytes of a function's configuration space with a per-byte mask of the
 * bits the driver may write ([PCI] 6.1: every other bit is read-only), and the
 * capability list builder. Registers with side effects (BARs, MSI-X control,
 * the virtio PCI configuration access window) are handled by the transport
 * around the plain store.
 */
export class ConfigSpace {
  /** The register values. */
  readonly bytes: Uint8Array;
  /** Little-endian access to {@link bytes}. */
  readonly view: DataView;
  /** Bits the driver may change, byte for byte. */
  private readonly writable: Uint8Array;
  private lastCapability = 0;
  private nextCapability = 0x40;

  /** Bytes implemented: 256 (conventional) or 4096 (PCI Express). */
  readonly size: number;

  /** An all-zero space of `size` bytes. */
  constructor(size: 256 | 4096) {
    this.size = size;
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.writable = new Uint8Array(size);
  }

  /** Reads a little-endian value of `size` bytes (1, 2 or 4) at a checked offset. */
  read(offset: number, size: number): number {
    if (size === 1) return this.view.getUint8(offset);
    if (size === 2) return this.view.getUint16(offset, true);
    return this.view.getUint32(offset, true);
  }

  /** Applies a driver write through the writable mask. */
  write(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) {
      const mask = this.writable[offset + i] as number;
      this.bytes[offset + i] = ((this.bytes[offset + i] as number) & ~mask) | ((value >>> (8 * i)) & mask);
    }
  }

  /** Sets a register's value (device side, ignoring the mask). */
  set(offset: number, size: number, value: number): void {
    if (size === 1) this.view.setUint8(offset, value);
    else if (size === 2) this.view.setUint16(offset, value, true);
    else this.view.setUint32(offset, value >>> 0, true);
  }

  /** Marks bits of a register writable by the driver. */
  allowWrite(offset: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) this.writable[offset + i] = (mask >>> (8 * i)) & 0xff;
  }

  /**
   * Appends a capability of `length` bytes (a multiple of 4) with ID `id` to the
   * capability list in the first 256 bytes ([PCI] 6.7); returns its offset.
   * Throws if the list is full (a programming error: too many capabilities).
   */
  addCapability(id: number, length: number): number {
    const at = this.nextCapability;
    if (length % 4 !== 0 || at + length > PCI_CONFIG_SPACE_SIZE) {
      throw new RangeError(`capability 0x${id.toString(16)} of ${length} bytes does not fit in configuration space`);
    }
    this.bytes[at] = id;
    if (this.lastCapability === 0) {
      this.bytes[PciConfig.CAPABILITY_LIST] = at;
      this.view.setUint16(PciConfig.STATUS, this.view.getUint16(PciConfig.STATUS, true) | PciStatus.CAP_LIST, true);
    } else {
      this.bytes[this.lastCapability + 1] = at;
    }
    this.lastCapability = at;
    this.nextCapability = at + length;
    return at;
  }
}
