/**
 * The system calls Node does not offer (Unix sockets with SCM_RIGHTS, eventfd,
 * memfd, mmap), bound from the C library through koffi. Linux x86-64 and
 * aarch64 share every constant and structure layout used here.
 */
import koffi from 'koffi';

/** A failed system call: `errno` is the C library's error number. */
export class SysError extends Error {
  /** The error number (see errno(3)). */
  readonly errno: number;
  /** Name of the failed call. */
  readonly syscall: string;

  /** Creates the error for `syscall` failing with `errno`. */
  constructor(syscall: string, errno: number) {
    super(`${syscall}: ${errnoName(errno)}`);
    this.name = 'SysError';
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Error numbers this package tests for. */
export const Errno = { EINTR: 4, EAGAIN: 11, EADDRINUSE: 98, ECONNREFUSED: 111, ECONNRESET: 104, ENOENT: 2 } as const;

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** Socket, fcntl, mmap, poll and other flag values (Linux). */
export const Sys = {
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SCM_RIGHTS: 1,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  MSG_CTRUNC: 0x8,
  MSG_CMSG_CLOEXEC: 0x40000000,
  EFD_NONBLOCK: 0o4000,
  EFD_CLOEXEC: 0o2000000,
  MFD_CLOEXEC: 1,
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  MAP_PRIVATE: 2,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: 0x20,
  MAP_NORESERVE: 0x4000,
  SEEK_END: 2,
  POLLIN: 0x1,
  POLLERR: 0x8,
  POLLHUP: 0x10,
} as const;

const libc = koffi.load('libc.so.6');

/** Raw bindings. Pointers are koffi BigInts or typed arrays; results follow the C conventions (-1 and errno). */
export const raw = {
  socket: libc.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number,
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)') as (fd: number, addr: Uint8Array, len: number) => number,
  connect: libc.func('int connect(int fd, void *addr, uint32_t len)') as (fd: number, addr: Uint8Array, len: number) => number,
  listen: libc.func('int listen(int fd, int backlog)') as (fd: number, backlog: number) => number,
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)') as (fd: number, addr: null, len: null, flags: number) => number,
  recvmsg: libc.func('long recvmsg(int fd, void *msg, int flags)') as (fd: number, msg: bigint, flags: number) => number,
  sendmsg: libc.func('long sendmsg(int fd, void *msg, int flags)') as (fd: number, msg: bigint, flags: number) => number,
  read: libc.func('long read(int fd, void *buf, unsigned long count)') as (fd: number, buf: ArrayBufferView | bigint, count: number) => number,
  write: libc.func('long write(int fd, void *buf, unsigned long count)') as (fd: number, buf: ArrayBufferView | bigint, count: number) => number,
  close: libc.func('int close(int fd)') as (fd: number) => number,
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)') as (initval: number, flags: number) => number,
  memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)') as (name: string, flags: number) => number,
  ftruncate: libc.func('int ftruncate(int fd, int64_t length)') as (fd: number, length: number) => number,
  lseek: libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as (fd: number, offset: number, whence: number) => number | bigint,
  mmap: libc.func('void *mmap(void *addr, unsigned long length, int prot, int flags, int fd, int64_t offset)') as (
    addr: bigint | null,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
  ) => bigint | null,
  munmap: libc.func('int munmap(void *addr, unsigned long length)') as (addr: bigint, length: number) => number,
};

/** The value of errno left by the last call. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Throws a {@link SysError} for `syscall` when `result` is negative; returns `result` otherwise. */
export function check(syscall: string, result: number): number {
  if (result < 0) throw new SysError(syscall, koffi.errno());
  return result;
}

/** Native memory that lives as long as the process (message buffers); returns its address and a view. */
export function allocNative(size: number): { address: bigint; bytes: Uint8Array } {
  const address = koffi.alloc('uint8_t', size) as bigint;
  return { address, bytes: new Uint8Array(koffi.view(address, size)) };
}

/** Releases memory from {@link allocNative}. */
export function freeNative(address: bigint): void {
  koffi.free(address);
}

/** A zero-copy ArrayBuffer over `length` bytes of native memory at `address`. */
export function viewNative(address: bigint, length: number): ArrayBuffer {
  return koffi.view(address, length);
}

/** Closes `fd`, ignoring errors (used on cleanup paths where nothing better can be done). */
export function closeQuietly(fd: number): void {
  if (fd >= 0) raw.close(fd);
}
