import type KoffiModule from 'koffi';

/**
 * The libc calls Node does not expose (fallocate for hole punching, flock for
 * image locking), through koffi. koffi is an optional peer dependency: the
 * browser part never loads it, and the file backend works without it,
 * writing zeroes instead of punching holes and taking no lock.
 */
type Koffi = typeof KoffiModule;

/** fallocate(2) modes (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
/** Deallocate the range; reads return zeroes. Needs KEEP_SIZE. */
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/** Zero the range, converting it to unwritten extents where the file system can. */
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** flock(2) operations. */
export const LOCK_SH = 1;
/** Exclusive lock. */
export const LOCK_EX = 2;
/** Fail with EWOULDBLOCK instead of waiting. */
export const LOCK_NB = 4;

/** An errno from a libc call, with its symbolic code when known. */
export class ErrnoError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** Its name, e.g. 'EOPNOTSUPP'. */
  readonly code: string;

  /** `call` failed with `errno`, whose name is `code`. */
  constructor(call: string, errno: number, code: string) {
    super(`${call} failed: ${code}`);
    this.name = 'ErrnoError';
    this.errno = errno;
    this.code = code;
  }
}

/** The libc calls the file backend needs that Node does not expose. */
export interface Libc {
  /** fallocate(2) on a thread-pool thread. */
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<void>;
  /** flock(2); throws {@link ErrnoError}. */
  flock(fd: number, operation: number): void;
}

/** Printed once when koffi is missing on Linux: what is lost and how to get it back. */
export const NO_KOFFI_WARNING =
  'koffi is not installed: @virtio-ts/virtio-blk/node opens images without an flock lock and writes zeroes instead of punching holes; install koffi (npm install koffi) to get both';

let loading: Promise<Libc | null> | undefined;

/**
 * The libc bindings, or null where they are unavailable: not Linux, no glibc,
 * or koffi not installed (then a process warning, {@link NO_KOFFI_WARNING}, says so once).
 */
export function loadLibc(): Promise<Libc | null> {
  loading ??= bind();
  return loading;
}

async function bind(): Promise<Libc | null> {
  if (process.platform !== 'linux') return null;
  let koffi: Koffi;
  try {
    koffi = (await import('koffi')).default;
  } catch {
    process.emitWarning(NO_KOFFI_WARNING, { code: 'VIRTIO_BLK_NO_KOFFI' });
    return null;
  }
  let lib;
  try {
    lib = koffi.load('libc.so.6');
  } catch {
    return null;
  }
  const fallocate = lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
  const flock = lib.func('int flock(int fd, int operation)');
  return {
    fallocate: (fd, mode, offset, length) =>
      new Promise((resolve, reject) => {
        fallocate.async(fd, mode, offset, length, (error: unknown, result: number) => {
          // koffi restores the worker thread's errno around this callback.
          if (error !== null && error !== undefined) reject(error instanceof Error ? error : new Error(String(error)));
          else if (result !== 0) reject(new ErrnoError('fallocate', koffi.errno(), errnoName(koffi, koffi.errno())));
          else resolve();
        });
      }),
    flock: (fd, operation) => {
      if ((flock(fd, operation) as number) !== 0) throw new ErrnoError('flock', koffi.errno(), errnoName(koffi, koffi.errno()));
    },
  };
}

function errnoName(koffi: Koffi, errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}
