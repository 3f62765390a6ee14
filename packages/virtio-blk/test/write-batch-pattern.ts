/** Writes started together by the write-batch test, each WRITE_BYTES at a multiple of BATCH_STRIDE. */
export const WRITES = 8;
export const WRITE_BYTES = 4096;
export const BATCH_STRIDE = 64 << 10;

/** The bytes of write `i` (0 is the lone write). */
export function writeData(i: number): Buffer {
  return Buffer.alloc(WRITE_BYTES, (i * 37 + 11) & 0xff);
}
