/** The file size limit the write-error test's device runs under. */
export const LIMIT = 256 << 10;
export const WRITE_BYTES = 4096;
/** Inside the limit, across it (half below), past it. */
export const errorWrites = [0, LIMIT - WRITE_BYTES / 2, LIMIT + WRITE_BYTES] as const;
