import { Errno, Sys, SysError, allocNative, check, closeQuietly, freeNative, lastErrno, raw } from './libc.js';

const EBADF = 9;

/** Longest path a sockaddr_un holds, with its terminating NUL (Linux: 108 bytes). */
const SUN_PATH_MAX = 107;
/** Descriptors one message may carry: vhost-user sends at most 8 (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_FDS_PER_MESSAGE = 8;
/** struct msghdr (56 bytes), struct iovec (16), and a control buffer of CMSG_SPACE(8 * 4) = 48 bytes. */
const MSGHDR_SIZE = 56;
const IOVEC_SIZE = 16;
const CMSG_HEADER = 16;
const CONTROL_SIZE = CMSG_HEADER + MAX_FDS_PER_MESSAGE * 4;

function sockaddrUn(path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length === 0 || bytes.length > SUN_PATH_MAX) {
    throw new RangeError(`socket path is ${bytes.length} bytes; a Unix socket path must be 1 to ${SUN_PATH_MAX} bytes`);
  }
  const addr = new Uint8Array(2 + bytes.length + 1);
  addr[0] = Sys.AF_UNIX;
  addr.set(bytes, 2);
  return addr;
}

/** Creates a non-blocking, close-on-exec Unix stream socket listening on `path` (which must not exist). */
export function listenUnix(path: string, backlog = 1): number {
  const addr = sockaddrUn(path);
  const fd = check('socket', raw.socket(Sys.AF_UNIX, Sys.SOCK_STREAM | Sys.SOCK_NONBLOCK | Sys.SOCK_CLOEXEC, 0));
  try {
    check('bind', raw.bind(fd, addr, addr.length));
    check('listen', raw.listen(fd, backlog));
  } catch (error) {
    raw.close(fd);
    throw error;
  }
  return fd;
}

/** Accepts one pending connection as a non-blocking descriptor, or returns -1 when none is pending. */
export function acceptUnix(listenFd: number): number {
  const fd = raw.accept4(listenFd, null, null, Sys.SOCK_NONBLOCK | Sys.SOCK_CLOEXEC);
  if (fd >= 0) return fd;
  const errno = lastErrno();
  if (errno === Errno.EAGAIN || errno === Errno.EINTR) return -1;
  throw new SysError('accept4', errno);
}

/** Connects a blocking Unix stream socket to `path` (the front-end side, used by tests and tools). */
export function connectUnix(path: string): number {
  const addr = sockaddrUn(path);
  const fd = check('socket', raw.socket(Sys.AF_UNIX, Sys.SOCK_STREAM | Sys.SOCK_CLOEXEC, 0));
  if (raw.connect(fd, addr, addr.length) < 0) {
    const error = new SysError('connect', lastErrno());
    raw.close(fd);
    throw error;
  }
  return fd;
}

/** The outcome of one {@link UnixChannel.receive}. */
export interface Received {
  /** Bytes read into the destination; 0 means the peer closed the connection. -1: nothing to read now. */
  readonly length: number;
  /** Descriptors that arrived with these bytes (SCM_RIGHTS), now owned by the caller. */
  readonly fds: number[];
}

/**
 * One end of a Unix stream socket carrying SCM_RIGHTS descriptors. The
 * message header, I/O vector and control buffer live in native memory owned by
 * the channel, so sending and receiving allocate nothing per call besides the
 * descriptor list.
 */
export class UnixChannel {
  /** The socket descriptor. */
  readonly fd: number;
  private readonly native: { address: bigint; bytes: Uint8Array };
  private readonly header: DataView;
  /** Data buffer: received bytes land here and sent bytes are copied here. */
  private readonly data: Uint8Array;
  private readonly dataAddress: bigint;
  private closed = false;

  /** Wraps a connected socket; `capacity` bounds one send or receive. */
  constructor(fd: number, capacity = 4096) {
    this.fd = fd;
    this.native = allocNative(MSGHDR_SIZE + IOVEC_SIZE + CONTROL_SIZE + capacity);
    const bytes = this.native.bytes;
    this.header = new DataView(bytes.buffer, bytes.byteOffset, MSGHDR_SIZE + IOVEC_SIZE + CONTROL_SIZE);
    const dataOffset = MSGHDR_SIZE + IOVEC_SIZE + CONTROL_SIZE;
    this.data = bytes.subarray(dataOffset);
    this.dataAddress = this.native.address + BigInt(dataOffset);
  }

  /**
   * Reads up to `length` bytes (at most the capacity) without blocking and
   * copies them to `into` at `offset`. Descriptors the kernel had to drop
   * because more than {@link MAX_FDS_PER_MESSAGE} came are closed by the kernel;
   * `truncated` tells.
   */
  receive(into: Uint8Array, offset: number, length: number): Received & { truncated: boolean } {
    if (this.closed) return { length: 0, fds: [], truncated: false };
    const want = Math.min(length, this.data.length);
    this.prepare(want, CONTROL_SIZE);
    const n = raw.recvmsg(this.fd, this.native.address, Sys.MSG_DONTWAIT | Sys.MSG_CMSG_CLOEXEC);
    if (n < 0) {
      const errno = lastErrno();
      if (errno === Errno.EAGAIN || errno === Errno.EINTR) return { length: -1, fds: [], truncated: false };
      // A connection reset by the peer is a closed connection.
      if (errno === Errno.ECONNRESET) return { length: 0, fds: [], truncated: false };
      throw new SysError('recvmsg', errno);
    }
    into.set(this.data.subarray(0, n), offset);
    const h = this.header;
    const fds: number[] = [];
    const controlLength = Number(h.getBigUint64(40, true));
    let at = MSGHDR_SIZE + IOVEC_SIZE;
    const end = at + Math.min(controlLength, CONTROL_SIZE);
    while (at + CMSG_HEADER <= end) {
      const cmsgLength = Number(h.getBigUint64(at, true));
      if (cmsgLength < CMSG_HEADER || at + cmsgLength > end) break;
      if (h.getInt32(at + 8, true) === Sys.SOL_SOCKET && h.getInt32(at + 12, true) === Sys.SCM_RIGHTS) {
        for (let p = at + CMSG_HEADER; p + 4 <= at + cmsgLength; p += 4) fds.push(h.getInt32(p, true));
      }
      at += (cmsgLength + 7) & ~7;
    }
    return { length: n, fds, truncated: (h.getInt32(48, true) & Sys.MSG_CTRUNC) !== 0 };
  }

  /**
   * Sends `bytes` with `fds` attached. Throws a {@link SysError} if the kernel
   * does not take the whole message at once (vhost-user messages are small;
   * a full socket buffer means the peer stopped reading).
   */
  send(bytes: Uint8Array, fds: readonly number[] = []): void {
    if (this.closed) throw new SysError('sendmsg', EBADF);
    if (bytes.length > this.data.length) throw new RangeError(`message of ${bytes.length} bytes exceeds the channel capacity`);
    if (fds.length > MAX_FDS_PER_MESSAGE) throw new RangeError(`at most ${MAX_FDS_PER_MESSAGE} descriptors per message`);
    this.data.set(bytes);
    const controlLength = fds.length === 0 ? 0 : CMSG_HEADER + fds.length * 4;
    this.prepare(bytes.length, (controlLength + 7) & ~7);
    if (fds.length > 0) {
      const h = this.header;
      const at = MSGHDR_SIZE + IOVEC_SIZE;
      h.setBigUint64(at, BigInt(controlLength), true);
      h.setInt32(at + 8, Sys.SOL_SOCKET, true);
      h.setInt32(at + 12, Sys.SCM_RIGHTS, true);
      fds.forEach((fd, i) => h.setInt32(at + CMSG_HEADER + 4 * i, fd, true));
    }
    const n = raw.sendmsg(this.fd, this.native.address, Sys.MSG_NOSIGNAL);
    if (n < 0) throw new SysError('sendmsg', lastErrno());
    if (n !== bytes.length) throw new SysError('sendmsg', Errno.EAGAIN);
  }

  /** Closes the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeQuietly(this.fd);
    freeNative(this.native.address);
  }

  private prepare(dataLength: number, controlLength: number): void {
    const h = this.header;
    const base = this.native.address;
    h.setBigUint64(0, 0n, true);
    h.setUint32(8, 0, true);
    h.setBigUint64(16, base + BigInt(MSGHDR_SIZE), true);
    h.setBigUint64(24, 1n, true);
    h.setBigUint64(32, controlLength === 0 ? 0n : base + BigInt(MSGHDR_SIZE + IOVEC_SIZE), true);
    h.setBigUint64(40, BigInt(controlLength), true);
    h.setInt32(48, 0, true);
    h.setBigUint64(MSGHDR_SIZE, this.dataAddress, true);
    h.setBigUint64(MSGHDR_SIZE + 8, BigInt(dataLength), true);
  }
}
