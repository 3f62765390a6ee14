import type { BlockBackend } from './backend.js';

/** Options for {@link MemoryBackend}. */
export interface MemoryBackendOptions {
  /** Refuse writes: the device offers VIRTIO_BLK_F_RO. */
  readonly readOnly?: boolean;
}

/**
 * A disk image held in memory, for browser emulators and tests. Nothing is
 * durable, so flush has nothing to do; discard and write zeroes both zero the
 * range (a discarded range reading back as zeroes is allowed by spec 5.2.6.2).
 */
export class MemoryBackend implements BlockBackend {
  /** The image cannot be written. */
  readonly readOnly: boolean;
  /** Zeroing never deallocates memory: `write_zeroes_may_unmap` is 0. */
  readonly canUnmap = false;
  private image: Uint8Array;

  /** Creates an image of `size` zero bytes, or wraps `image` (not copied: the caller sees every write). */
  constructor(image: number | Uint8Array, options: MemoryBackendOptions = {}) {
    if (typeof image === 'number') {
      if (!Number.isSafeInteger(image) || image < 0) throw new RangeError(`image size ${image} is not a non-negative integer`);
      this.image = new Uint8Array(image);
    } else {
      this.image = image;
    }
    this.readOnly = options.readOnly ?? false;
  }

  /** The image's bytes (replaced by a new array when the image is resized). */
  get bytes(): Uint8Array {
    return this.image;
  }

  /** Size of the image in bytes. */
  get size(): number {
    return this.image.length;
  }

  /** Copies the image bytes at `offset` into `buffers`. */
  async read(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    let at = this.check(offset, totalLength(buffers));
    for (const b of buffers) {
      b.set(this.image.subarray(at, at + b.length));
      at += b.length;
    }
  }

  /** Copies `buffers` into the image at `offset`. */
  async write(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    this.writable();
    let at = this.check(offset, totalLength(buffers));
    for (const b of buffers) {
      this.image.set(b, at);
      at += b.length;
    }
  }

  /** Memory has no cache to flush. */
  async flush(): Promise<void> {
    // Memory is as durable as this backend gets.
  }

  /** Zeroes the range (memory cannot be deallocated piecewise). */
  async discard(offset: number, length: number): Promise<void> {
    await this.writeZeroes(offset, length, true);
  }

  /** Zeroes the range. */
  async writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    this.writable();
    const at = this.check(offset, length);
    this.image.fill(0, at, at + length);
  }

  /** Grows (with zeroes) or shrinks the image to `size` bytes. */
  async resize(size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`image size ${size} is not a non-negative integer`);
    const next = new Uint8Array(size);
    next.set(this.image.subarray(0, Math.min(size, this.image.length)));
    this.image = next;
  }

  private check(offset: number, length: number): number {
    if (!Number.isSafeInteger(offset) || offset < 0 || length > this.image.length - offset) {
      throw new RangeError(`${length} bytes at ${offset} are outside the ${this.image.length}-byte image`);
    }
    return offset;
  }

  private writable(): void {
    if (this.readOnly) throw new Error('the image is read-only');
  }
}

/** Sum of the buffers' lengths. */
function totalLength(buffers: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
}
