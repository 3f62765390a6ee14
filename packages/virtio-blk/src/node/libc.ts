import type KoffiModule from 'koffi';

/**
 * The libc calls Node does not expose (fallocate for hole punching, flock for
 * image locking, preadv2 for page-cache reads without waiting), through koffi. koffi is an optional peer dependency: the
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
  /**
   * preadv2(2) with RWF_NOWAIT into `buffers`, on the calling thread: the
   * bytes read (fewer than asked when only part of the range is cached), or
   * -errno: -EAGAIN when the data would have to come from the disk. It never
   * waits for I/O, so the event loop can serve page-cache hits without the
   * thread-pool round trip. Absent where pointers are not 64 bits wide.
   */
  readonly readNow?: (fd: number, offset: number, buffers: readonly Uint8Array[]) => number;
}

/** preadv2 flag: fail with EAGAIN instead of waiting for I/O (linux/fs.h). */
const RWF_NOWAIT = 0x08;

/** Printed once when koffi is missing on Linux: what is lost and how to get it back. */
export const NO_KOFFI_WARNING =
  'koffi is not installed: @virtio-ts/virtio-blk/node opens images without an flock lock, writes zeroes instead of punching holes and reads cached data through the thread pool; install koffi (npm install koffi) to get all three';

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
  const preadv2 = lib.func('intptr_t preadv2(int fd, void *iov, int iovcnt, int64_t offset, int flags)');
  const iovecs = koffi.sizeof('void *') === 8 ? new IovecList((view) => Number(koffi.address(view))) : undefined;
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
    ...(iovecs && {
      readNow: (fd: number, offset: number, buffers: readonly Uint8Array[]) => {
        const n = preadv2(fd, iovecs.fill(buffers), buffers.length, offset, RWF_NOWAIT) as number;
        return n >= 0 ? n : -koffi.errno();
      },
    }),
  };
}

/** The host stores the low half of a 64-bit word first. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * struct iovec entries (64-bit pointers and lengths) for guest-memory views,
 * rebuilt in place for each call. Addresses are computed from each
 * ArrayBuffer's base, looked up once: the backing store of a guest-memory
 * buffer never moves.
 */
class IovecList {
  private words = new Uint32Array(64);
  private readonly bases = new WeakMap<ArrayBufferLike, number>();
  private readonly addressOf: (view: Uint8Array) => number;

  constructor(addressOf: (view: Uint8Array) => number) {
    this.addressOf = addressOf;
  }

  /** The iovec array describing `buffers`, valid until the next call. */
  fill(buffers: readonly Uint8Array[]): Uint32Array {
    if (this.words.length < buffers.length * 4) this.words = new Uint32Array(buffers.length * 4);
    const words = this.words;
    for (let i = 0; i < buffers.length; i++) {
      const view = buffers[i] as Uint8Array;
      let base = this.bases.get(view.buffer);
      if (base === undefined) {
        base = this.addressOf(view) - view.byteOffset;
        this.bases.set(view.buffer, base);
      }
      const address = base + view.byteOffset;
      const lo = LITTLE_ENDIAN ? 0 : 1;
      words[4 * i + lo] = address % 0x100000000;
      words[4 * i + 1 - lo] = Math.floor(address / 0x100000000);
      words[4 * i + 2 + lo] = view.length;
      words[4 * i + 3 - lo] = 0;
    }
    return words;
  }
}

function errnoName(koffi: Koffi, errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}
