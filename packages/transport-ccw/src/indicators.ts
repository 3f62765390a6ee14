import type { GuestMemory } from '@virtio-ts/virtqueue';

/**
 * One byte of guest memory that the device sets bits in while the guest reads
 * and clears them, possibly on another thread: every update is an atomic OR.
 */
class IndicatorByte {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly index: number,
  ) {}

  /** ORs `mask` in; returns the byte's previous value. */
  or(mask: number): number {
    return Atomics.or(this.bytes, this.index, mask);
  }
}

/** The indicator byte at guest `address`, or undefined unless `length` bytes from there are writable memory of one region. */
function indicatorBytes(memory: GuestMemory, address: number, length: number): ((offset: number) => IndicatorByte) | undefined {
  const region = memory.regions[memory.regionIndexOf(address, length, 'write')];
  if (region === undefined) return undefined;
  const base = address - region.guestAddress;
  return (offset) => new IndicatorByte(region.bytes, base + offset);
}

/**
 * Classic queue or configuration indicators (spec 4.3.2.6.1, 4.3.2.6.2): a
 * 64-bit big-endian value in guest memory; the indicator for queue n is the
 * bit of value 2^n, the configuration change indicator is bit 0.
 */
export class ClassicIndicators {
  private readonly bits: IndicatorByte[];

  private constructor(byteAt: (offset: number) => IndicatorByte) {
    // Bit n of a big-endian u64 lives in byte 7 - n/8.
    this.bits = Array.from({ length: 8 }, (_, i) => byteAt(7 - i));
  }

  /** The indicators at guest `address`, or undefined when the 8 bytes are not writable guest memory of one region. */
  static at(memory: GuestMemory, address: number): ClassicIndicators | undefined {
    const byteAt = indicatorBytes(memory, address, 8);
    return byteAt === undefined ? undefined : new ClassicIndicators(byteAt);
  }

  /** Sets indicator `bit` (0..63). */
  set(bit: number): void {
    (this.bits[bit >>> 3] as IndicatorByte).or(1 << (bit & 7));
  }
}

/**
 * Two-stage indicators for adapter interruptions (spec 4.3.2.6.3, 4.3.3.1.2):
 * one bit per queue in the guest's indicator area starting at `bitNumber`,
 * counted from the most significant bit of the first byte, and a summary
 * indicator byte shared with other devices.
 */
export class AdapterIndicators {
  /** The I/O interruption subclass of the adapter interruption. */
  readonly isc: number;
  private readonly summary: IndicatorByte;
  private readonly queues: IndicatorByte[];
  private readonly masks: number[];

  private constructor(summary: IndicatorByte, queues: IndicatorByte[], masks: number[], isc: number) {
    this.summary = summary;
    this.queues = queues;
    this.masks = masks;
    this.isc = isc;
  }

  /**
   * Indicators for `queueCount` queues; a string saying what is wrong when the
   * summary byte or the indicator bits are not writable guest memory (each
   * within one region) or the bit number is out of range.
   */
  static at(
    memory: GuestMemory,
    summaryAddress: number,
    areaAddress: number,
    bitNumber: number,
    queueCount: number,
    isc: number,
  ): AdapterIndicators | string {
    if (!Number.isSafeInteger(summaryAddress)) return 'the summary indicator address is beyond guest memory';
    if (!Number.isSafeInteger(areaAddress) || !Number.isSafeInteger(bitNumber)) return 'the indicator area is beyond guest memory';
    const summaryAt = indicatorBytes(memory, summaryAddress, 1);
    if (summaryAt === undefined) return `the summary indicator at 0x${summaryAddress.toString(16)} is not writable guest memory`;
    const firstByte = Math.floor(bitNumber / 8);
    const bytes = Math.floor((bitNumber + Math.max(queueCount, 1) - 1) / 8) - firstByte + 1;
    const areaAt = indicatorBytes(memory, areaAddress + firstByte, bytes);
    if (areaAt === undefined) {
      return `the indicator bits ${bitNumber}.. at 0x${areaAddress.toString(16)} are not writable guest memory of one region`;
    }
    const queues: IndicatorByte[] = [];
    const masks: number[] = [];
    for (let index = 0; index < queueCount; index++) {
      const bit = (bitNumber % 8) + index;
      queues.push(areaAt(bit >>> 3));
      masks.push(0x80 >>> (bit & 7));
    }
    return new AdapterIndicators(summaryAt(0), queues, masks, isc);
  }

  /**
   * Sets queue `index`'s indicator, then the summary indicator to 0x01.
   * Returns true when the summary indicator was clear before, i.e. when an
   * adapter interruption is due (spec 4.3.3.1.2: only then SHOULD one be made).
   */
  set(index: number): boolean {
    const queue = this.queues[index];
    if (queue === undefined) return false;
    queue.or(this.masks[index] as number);
    return this.summary.or(0x01) === 0;
  }
}
