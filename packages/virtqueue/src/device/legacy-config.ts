import type { ConfigField } from './contract.js';

/**
 * A configuration space as a legacy driver on a big-endian guest sees it
 * (spec 2.5.3: legacy configuration fields are in the guest's byte order):
 * each multi-byte field the device declares is byte-reversed, every other
 * byte is as the device lays it out.
 */
export class BigEndianConfig {
  /** For each configuration byte, the offset of the field it belongs to. */
  private readonly fieldStart: Uint32Array;
  /** For each configuration byte, the size of its field (1 outside declared fields). */
  private readonly fieldSize: Uint8Array;

  /** Maps `fields` over a space of `configSize` bytes; throws a RangeError for a field that is malformed, outside or overlapping (a device bug). */
  constructor(fields: readonly ConfigField[], configSize: number) {
    this.fieldStart = Uint32Array.from({ length: configSize }, (_, i) => i);
    this.fieldSize = new Uint8Array(configSize).fill(1);
    for (const { offset, size } of fields) {
      if (!(size === 2 || size === 4 || size === 8) || !Number.isInteger(offset) || offset < 0 || offset + size > configSize) {
        throw new RangeError(`legacy configuration field of ${size} bytes at ${offset} is not a 2-, 4- or 8-byte field inside the ${configSize}-byte configuration space`);
      }
      for (let i = offset; i < offset + size; i++) {
        if (this.fieldSize[i] !== 1) throw new RangeError(`legacy configuration field at ${offset} overlaps another one`);
        this.fieldStart[i] = offset;
      }
      this.fieldSize.fill(size, offset, offset + size);
    }
  }

  /** The smallest run of whole fields holding bytes [offset, offset + length), as [start, end); the range is inside the space. */
  span(offset: number, length: number): [number, number] {
    if (length === 0) return [offset, offset];
    const last = offset + length - 1;
    return [this.fieldStart[offset] as number, (this.fieldStart[last] as number) + (this.fieldSize[last] as number)];
  }

  /**
   * Reverses each field in `bytes`, the configuration bytes from `at` on (a
   * run of whole fields, see {@link span}): turns the device's layout into the
   * big-endian view and back, the same operation both ways.
   */
  swap(bytes: Uint8Array, at: number): void {
    for (let i = 0; i < bytes.length; ) {
      const size = this.fieldSize[at + i] as number;
      if (size > 1) bytes.subarray(i, i + size).reverse();
      i += size;
    }
  }
}
