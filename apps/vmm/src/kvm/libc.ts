/**
 * The few libc calls the VMM needs, reached through koffi (no C code). Loaded
 * lazily so that importing the package on a host without koffi's prebuilt
 * binary, or without Linux, fails only when a VM is actually created.
 *
 * `ioctl` is variadic; koffi calls variadic functions through fixed prototypes,
 * so it is declared twice: with an integer third argument and with a pointer
 * (a Uint8Array whose bytes the kernel reads or fills).
 */
import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

type Koffi = typeof KoffiModule;

/** The libc functions, typed for the way the VMM calls them. */
export interface Libc {
  /** The koffi module itself, for what the bindings do not wrap (errno names). */
  readonly koffi: Koffi;
  /** open(2): a new descriptor, or -1 with errno set. */
  open(path: string, flags: number): number;
  /** close(2): 0, or -1 with errno set. */
  close(fd: number): number;
  /**
   * ioctl(2) with an integer argument (0 when the request takes none): its result, or -1 with errno
   * set.
   */
  ioctlInt(fd: number, request: number, arg: number | bigint): number;
  /** ioctl(2) passing a pointer to `arg`'s bytes, which the kernel reads or fills in place. */
  ioctlPtr(fd: number, request: number, arg: Uint8Array): number;
  /** Returns the mapping's address, or 2^64-1 (MAP_FAILED). */
  mmap(length: number, prot: number, flags: number, fd: number, offset: number): bigint;
  /** munmap(2) of a mapping made by `mmap`: 0, or -1 with errno set. */
  munmap(address: bigint, length: number): number;
  /** madvise(2), e.g. MADV_DONTNEED to give a private range's pages back to the host. */
  madvise(address: bigint, length: number, advice: number): number;
  /** eventfd(2): a new eventfd descriptor, or -1 with errno set. */
  eventfd(initval: number, flags: number): number;
  /** read(2) of up to `length` bytes straight into `buffer`: the count read, or -1 with errno set. */
  read(fd: number, buffer: Uint8Array, length: number): number;
  /** write(2) of `length` bytes from `buffer`: the count written, or -1 with errno set. */
  write(fd: number, buffer: Uint8Array, length: number): number;
  /** gettid(2): the calling thread's kernel thread id, which `tgkill` targets. */
  gettid(): number;
  /** tgkill(2): sends `signal` to one thread, which is how a vCPU is kicked out of KVM_RUN. */
  tgkill(tgid: number, tid: number, signal: number): number;
  /** epoll_create1(2): a new epoll descriptor, or -1 with errno set. */
  epollCreate1(flags: number): number;
  /** epoll_ctl(2); `event` holds a packed 12-byte struct epoll_event. */
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /** Blocks in the libuv thread pool; `done` runs on the calling thread with the count of ready events. */
  epollWaitAsync(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number, done: (error: unknown, count: number) => void): void;
  /** The calling thread's errno after a failed call. */
  errno(): number;
  /** A zero-copy ArrayBuffer over native memory at `address`. */
  view(address: bigint, length: number): ArrayBuffer;
}

/** O_RDWR | O_CLOEXEC. */
export const O_RDWR_CLOEXEC = 0o2 | 0o2000000;
/** PROT_READ | PROT_WRITE. */
export const PROT_RW = 0x1 | 0x2;
/** MAP_SHARED. */
export const MAP_SHARED = 0x01;
/** MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE: guest RAM, committed page by page as the guest touches it. */
export const MAP_GUEST_RAM = 0x02 | 0x20 | 0x4000;
/** MADV_DONTNEED: drop a private mapping's pages; the range stays mapped and reads back zeros. */
export const MADV_DONTNEED = 4;
/** The address mmap returns on failure, (void *)-1. */
export const MAP_FAILED = 0xffffffffffffffffn;
/** EFD_CLOEXEC | EFD_NONBLOCK. */
export const EFD_FLAGS = 0o2000000 | 0o4000;
/** EINTR: a system call interrupted by a signal. */
export const EINTR = 4;
/** EAGAIN: nothing to read from a non-blocking descriptor. */
export const EAGAIN = 11;

let loaded: Libc | undefined;

/** Loads koffi and binds libc (once per thread). */
export function libc(): Libc {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const ioctlInt = lib.func('int ioctl(int fd, unsigned long request, unsigned long arg)');
  const ioctlPtr = lib.func('int ioctl(int fd, unsigned long request, void *arg)');
  const mmap = lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)');
  const munmap = lib.func('int munmap(uintptr_t addr, size_t length)');
  const madvise = lib.func('int madvise(uintptr_t addr, size_t length, int advice)');
  const epollWait = lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)');
  loaded = {
    koffi,
    open: lib.func('int open(const char *path, int flags)'),
    close: lib.func('int close(int fd)'),
    ioctlInt: (fd, request, arg) => ioctlInt(fd, request, arg) as number,
    ioctlPtr: (fd, request, arg) => ioctlPtr(fd, request, arg) as number,
    mmap: (length, prot, flags, fd, offset) => koffi.address(mmap(null, length, prot, flags, fd, offset)),
    munmap: (address, length) => munmap(address, length) as number,
    madvise: (address, length, advice) => madvise(address, length, advice) as number,
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    read: lib.func('intptr_t read(int fd, void *buf, size_t count)'),
    write: lib.func('intptr_t write(int fd, const void *buf, size_t count)'),
    gettid: lib.func('int gettid()'),
    tgkill: lib.func('int tgkill(int tgid, int tid, int sig)'),
    epollCreate1: lib.func('int epoll_create1(int flags)'),
    epollCtl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
    epollWaitAsync: (epfd, events, maxEvents, timeoutMs, done) => epollWait.async(epfd, events, maxEvents, timeoutMs, done),
    errno: () => koffi.errno(),
    view: (address, length) => koffi.view(address, length),
  };
  return loaded;
}

/** The symbolic name of an errno value (ENOENT, EACCES...), for messages. */
export function errnoName(errno: number): string {
  const names = libc().koffi.os.errno;
  for (const [name, value] of Object.entries(names)) if (value === errno) return name;
  return `errno ${errno}`;
}
