/**
 * Where a block device keeps its data. Offsets and lengths are in bytes and
 * always lie inside [0, size): the device validates every request against the
 * capacity before calling the backend. Buffers are zero-copy views of guest
 * memory; a backend must not keep them after its promise settles.
 */
export interface BlockBackend {
  /** Size of the image in bytes. The device exposes floor(size / 512) sectors. */
  readonly size: number;
  /** The image cannot be written: the device offers VIRTIO_BLK_F_RO. */
  readonly readOnly: boolean;
  /** `writeZeroes(..., true)` and `discard` may deallocate storage (sets `write_zeroes_may_unmap`). */
  readonly canUnmap: boolean;

  /**
   * Fills `buffers`, in order, with the bytes starting at `offset`. Returns
   * nothing when the bytes are already there (a backend that can answer at
   * once, such as a page-cache hit, then costs the device no promise), else a
   * promise that settles when they are.
   */
  read(offset: number, buffers: readonly Uint8Array[]): Promise<void> | void;
  /** Stores `buffers`, in order, at `offset`. */
  write(offset: number, buffers: readonly Uint8Array[]): Promise<void>;
  /** Makes every write that completed before this call durable. */
  flush(): Promise<void>;
  /** The range's contents are no longer needed; later reads may return anything. */
  discard(offset: number, length: number): Promise<void>;
  /** Later reads of the range return zeroes; with `unmap` the storage may be deallocated. */
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void>;
  /** Changes the image size (optional: backends that cannot resize omit it). */
  resize?(size: number): Promise<void>;
}
