import { Sys, SysError, lastErrno, raw, viewNative } from './libc.js';

/** koffi cannot make an ArrayBuffer view over more than 4 GiB; larger mappings are cut into pieces. */
export const MAX_VIEW_BYTES = 2 ** 32;

const MAP_FAILED = 0xffffffffffffffffn;

/** A shared mapping of part of a file (a memfd or hugetlbfs file the front-end passed). */
export interface SharedMapping {
  /** The mapped bytes, as consecutive views of at most {@link MAX_VIEW_BYTES} each. */
  readonly pieces: readonly ArrayBuffer[];
  /**
   * Drops the file's pages. The address range is not unmapped but replaced by
   * private anonymous memory: a view or an I/O still in flight into it (a disk
   * read finishing after the front-end went away) lands in scratch memory
   * instead of faulting the whole process. The range stays reserved.
   */
  release(): void;
}

/** Size of the file behind `fd`, or undefined when it cannot be told. */
export function fileSize(fd: number): number | undefined {
  const size = Number(raw.lseek(fd, 0, Sys.SEEK_END));
  return size < 0 ? undefined : size;
}

/**
 * Maps `size` bytes of `fd` starting at `offset`, read-write and shared. The
 * file must extend at least that far: touching a page past its end raises
 * SIGBUS and kills the process, so the caller checks with {@link fileSize}.
 */
export function mapShared(fd: number, offset: number, size: number): SharedMapping {
  // mmap offsets must be page-aligned and vhost-user's mmap_offset need not be, so map from 0.
  const length = offset + size;
  const address = raw.mmap(null, length, Sys.PROT_READ | Sys.PROT_WRITE, Sys.MAP_SHARED, fd, 0);
  if (address === null || address === MAP_FAILED) throw new SysError('mmap', lastErrno());
  const pieces: ArrayBuffer[] = [];
  for (let at = 0; at < size; at += MAX_VIEW_BYTES) {
    pieces.push(viewNative(address + BigInt(offset + at), Math.min(MAX_VIEW_BYTES, size - at)));
  }
  let mapped = true;
  return {
    pieces,
    release: () => {
      if (!mapped) return;
      mapped = false;
      // Should this fail, the shared pages simply stay mapped, which is safe too.
      const flags = Sys.MAP_PRIVATE | Sys.MAP_ANONYMOUS | Sys.MAP_FIXED | Sys.MAP_NORESERVE;
      raw.mmap(address, length, Sys.PROT_READ | Sys.PROT_WRITE, flags, -1, 0);
    },
  };
}
