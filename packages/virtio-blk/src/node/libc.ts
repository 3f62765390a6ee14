import type KoffiModule from 'koffi';
import { HostAddresses, LITTLE_ENDIAN } from './iovec.js';
import { constants } from 'node:os';

/**
 * The libc calls Node does not expose (fallocate for hole punching, flock for
 * image locking, preadv2 for page-cache reads without waiting, Linux AIO for
 * batched writes), through koffi. koffi is an optional peer dependency: the
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

  /** `call` failed with `errno`; its name comes from the host's errno table. */
  constructor(call: string, errno: number) {
    const code = Object.entries(constants.errno).find(([, value]) => value === errno)?.[0] ?? `errno ${errno}`;
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
  /** Linux AIO, where this binding knows the system call numbers (x86-64 and arm64). */
  readonly aio?: LinuxAio;
}

/**
 * Linux AIO (io_setup, io_submit, io_getevents, io_destroy; glibc has no
 * wrappers, so through syscall(2)) for the AIO writer. Contexts are user
 * addresses, safe as numbers.
 */
export interface LinuxAio {
  /** Host addresses of guest-memory views and of the caller's own arrays. */
  readonly addresses: HostAddresses;
  /** io_setup: a context for up to `maxEvents` operations in flight. Throws {@link ErrnoError}. */
  setup(maxEvents: number): number;
  /** io_submit on a thread-pool thread; `done` gets the number submitted, or -errno. */
  submit(context: number, count: number, iocbPointers: Uint32Array, done: (submitted: number) => void): void;
  /** io_getevents without waiting: the number of struct io_event written to `events` (8 words each), or -errno. */
  takeEvents(context: number, maximum: number, events: Uint32Array): number;
  /** io_getevents on a thread-pool thread, waiting for at least `minimum`; `done` gets the count, or -errno. */
  waitEvents(context: number, minimum: number, maximum: number, events: Uint32Array, done: (count: number) => void): void;
  /** io_destroy. */
  destroy(context: number): void;
}

/** syscall(2) numbers of the AIO calls per architecture (arch/x86/entry/syscalls, include/uapi/asm-generic/unistd.h). */
const AIO_SYSCALLS: Partial<Record<string, { setup: number; destroy: number; getEvents: number; submit: number }>> = {
  x64: { setup: 206, destroy: 207, getEvents: 208, submit: 209 },
  arm64: { setup: 0, destroy: 1, getEvents: 4, submit: 2 },
};

const { EIO } = constants.errno;

/** preadv2 flag: fail with EAGAIN instead of waiting for I/O (linux/fs.h). */
const RWF_NOWAIT = 0x08;

/** Printed once when koffi is missing on Linux: what is lost and how to get it back. */
export const NO_KOFFI_WARNING =
  'koffi is not installed: @virtio-ts/virtio-blk/node opens images without an flock lock, writes zeroes instead of punching holes, and reads and writes through the thread pool one by one; install koffi (npm install koffi) to get locking, hole punching, page-cache reads and batched writes';

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
  const addresses = koffi.sizeof('void *') === 8 ? new HostAddresses((view) => Number(koffi.address(view))) : undefined;
  let iovecs = new Uint32Array(64);
  const numbers = AIO_SYSCALLS[process.arch];
  const aio = addresses === undefined || numbers === undefined || !LITTLE_ENDIAN ? undefined : bindAio(koffi, lib, numbers, addresses);
  return {
    fallocate: (fd, mode, offset, length) =>
      new Promise((resolve, reject) => {
        fallocate.async(fd, mode, offset, length, (error: unknown, result: number) => {
          // koffi restores the worker thread's errno around this callback.
          if (error !== null && error !== undefined) reject(error instanceof Error ? error : new Error(String(error)));
          else if (result !== 0) reject(new ErrnoError('fallocate', koffi.errno()));
          else resolve();
        });
      }),
    flock: (fd, operation) => {
      if ((flock(fd, operation) as number) !== 0) throw new ErrnoError('flock', koffi.errno());
    },
    ...(addresses && {
      readNow: (fd: number, offset: number, buffers: readonly Uint8Array[]) => {
        if (iovecs.length < 4 * buffers.length) iovecs = new Uint32Array(4 * buffers.length);
        addresses.writeIovecs(iovecs, 0, buffers);
        const n = preadv2(fd, iovecs, buffers.length, offset, RWF_NOWAIT) as number;
        return n >= 0 ? n : -koffi.errno();
      },
    }),
    ...(aio && { aio }),
  };
}

/**
 * The AIO calls. syscall(2) is variadic; it is declared here with fixed
 * integer and pointer arguments, which x86-64 and arm64 Linux pass in the
 * same registers either way (koffi's async calls need a fixed prototype).
 */
function bindAio(koffi: Koffi, lib: ReturnType<Koffi['load']>, numbers: NonNullable<(typeof AIO_SYSCALLS)[string]>, addresses: HostAddresses): LinuxAio {
  const setup = lib.func('long syscall(long number, uint32_t maxEvents, _Out_ uint64_t *context)');
  const destroy = lib.func('long syscall(long number, uintptr_t context)');
  const submit = lib.func('long syscall(long number, uintptr_t context, long count, void *iocbPointers)');
  const getEvents = lib.func('long syscall(long number, uintptr_t context, long minimum, long maximum, void *events, void *timeout)');
  const noWait = new Uint32Array(4);
  const result = (n: number): number => (n >= 0 ? n : -koffi.errno());
  const call = (done: (n: number) => void) => (error: unknown, n: number) => done(error === null || error === undefined ? result(n) : -EIO);
  return {
    addresses,
    setup: (maxEvents) => {
      const context = new BigUint64Array(1);
      if ((setup(numbers.setup, maxEvents, context) as number) !== 0) throw new ErrnoError('io_setup', koffi.errno());
      return Number(context[0]);
    },
    submit: (context, count, iocbPointers, done) => submit.async(numbers.submit, context, count, iocbPointers, call(done)),
    takeEvents: (context, maximum, events) => result(getEvents(numbers.getEvents, context, 0, maximum, events, noWait) as number),
    waitEvents: (context, minimum, maximum, events, done) => getEvents.async(numbers.getEvents, context, minimum, maximum, events, null, call(done)),
    destroy: (context) => {
      destroy(numbers.destroy, context);
    },
  };
}

