import { constants, promises as fsp, read, readv, write, writev } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import type { BlockBackend } from '../backend.js';
import { SECTOR_SIZE } from '../constants.js';
import { AioWriter } from './aio-writer.js';
import { skipBytes } from './iovec.js';
import { ErrnoError, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, LOCK_EX, LOCK_NB, LOCK_SH, loadLibc, type Libc } from './libc.js';

/** Options for {@link FileBackend.open}. */
export interface FileBackendOptions {
  /** Open the image read-only (and take a shared lock); the device offers VIRTIO_BLK_F_RO. */
  readonly readOnly?: boolean;
  /**
   * Bypass the host page cache with O_DIRECT. Requests whose guest buffers are
   * not aligned as the file system needs fall back to buffered I/O on a second
   * descriptor (Linux keeps the two coherent).
   */
  readonly direct?: boolean;
  /**
   * Take an flock(2) so no other process opens the image at the same time
   * (Linux, with the optional dependency koffi installed). Defaults to true.
   */
  readonly lock?: boolean;
  /**
   * How writes reach the kernel, in QEMU's words. 'threads' (the default):
   * each write is one positional write on libuv's thread pool. 'native': the
   * writes requested in one event-loop turn go together in one Linux AIO
   * io_submit on one pool thread (buffered I/O, koffi installed, x86-64 or
   * arm64; otherwise 'threads'). 'native' spends about a third less CPU per
   * write, but one thread then performs a whole batch in turn where the pool
   * would run four writes at once, so at queue depth 32 on a quiet machine it
   * completed fewer 4 KiB random writes per second (see the README's
   * benchmark): choose it where host CPU, not a single disk's latency, is
   * what runs out.
   */
  readonly aio?: 'threads' | 'native';
}

/** Why an image cannot be opened, in one line that says what to do. */
export class ImageError extends Error {
  /** 'missing', 'locked', 'too-small', 'access' or 'unsupported'. */
  readonly reason: 'missing' | 'locked' | 'too-small' | 'access' | 'unsupported';

  /** Creates the error; `message` is the one line shown to a person. */
  constructor(reason: ImageError['reason'], message: string) {
    super(message);
    this.name = 'ImageError';
    this.reason = reason;
  }
}

/** Largest run of zeroes written in one call where the file system cannot zero a range itself. */
const ZERO_CHUNK = 1 << 20;

/**
 * Largest read tried from the page cache on the event loop: copying more
 * would hold the loop longer than the thread-pool round trip it saves.
 */
const READ_NOW_MAX_BYTES = 128 << 10;

const { EINVAL, ENOSYS, EOPNOTSUPP } = osConstants.errno;
const RESOLVED = Promise.resolve();

/**
 * A raw disk image file. Reads and writes go straight between the file and
 * the guest-memory views they are given (positional read/write, readv/writev
 * for scattered buffers; no intermediate copy), through the callback API on
 * the descriptor: it does about twice the operations per second of
 * FileHandle's promise API. With `aio: 'native'`, writes requested in the
 * same event-loop turn go to the kernel together, in one Linux AIO io_submit
 * on one thread-pool thread (see AioWriter). A read of data already in the host page cache
 * is served at once on the event loop by preadv2(RWF_NOWAIT) (koffi
 * installed, buffered I/O): the thread-pool hand-off costs several times
 * the copy itself; data that would need the disk goes to the thread pool
 * as before. FLUSH is fdatasync; DISCARD
 * punches holes and WRITE_ZEROES uses FALLOC_FL_ZERO_RANGE (or a hole with
 * unmap) where the file system supports them and koffi is installed, and
 * writes zeroes otherwise.
 */
export class FileBackend implements BlockBackend {
  /** The image cannot be written. */
  readonly readOnly: boolean;
  /** Holes can be punched (Linux, koffi installed, and a file system that supports it). */
  readonly canUnmap: boolean;
  /** The path the image was opened from. */
  readonly path: string;
  private bytes: number;
  private readonly handle: FileHandle;
  /** A buffered descriptor for requests O_DIRECT refuses (only with `direct`). */
  private readonly buffered: FileHandle | undefined;
  private readonly libc: Libc | null;
  /** Page-cache reads on the event loop; dropped if the kernel or file system refuses RWF_NOWAIT. */
  private readNow: Libc['readNow'];
  /** Batched buffered writes (Linux AIO), where the kernel gives this process an AIO context. */
  private readonly writer: AioWriter | undefined;
  private punchHole: boolean;
  private zeroRange: boolean;
  private zeroes: Uint8Array | undefined;
  private closed = false;

  private constructor(path: string, handle: FileHandle, buffered: FileHandle | undefined, size: number, readOnly: boolean, c: Libc | null, punchHole: boolean, aio: FileBackendOptions['aio']) {
    this.path = path;
    this.handle = handle;
    this.buffered = buffered;
    this.bytes = size;
    this.readOnly = readOnly;
    this.libc = c;
    // With O_DIRECT there is no page cache to hit, and the read would wait for the disk.
    this.readNow = buffered === undefined ? c?.readNow : undefined;
    this.writer = aio === 'native' && buffered === undefined && !readOnly ? aioWriter(c, handle.fd) : undefined;
    this.punchHole = punchHole;
    this.zeroRange = this.libc !== null && !readOnly;
    this.canUnmap = punchHole;
  }

  /**
   * Opens the image at `path`. Rejects with an {@link ImageError} when it is
   * missing, not accessible, in use by another process, or smaller than one sector.
   */
  static async open(path: string, options: FileBackendOptions = {}): Promise<FileBackend> {
    const readOnly = options.readOnly ?? false;
    const direct = options.direct ?? false;
    const flags = (readOnly ? constants.O_RDONLY : constants.O_RDWR) | (direct ? constants.O_DIRECT : 0);
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, flags);
    } catch (error) {
      throw openError(path, error, readOnly, direct);
    }
    let buffered: FileHandle | undefined;
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new ImageError('unsupported', `image ${path} is not a regular file: give the path of a raw disk image file`);
      const c = await loadLibc();
      if (options.lock ?? true) lockImage(c, handle.fd, path, readOnly);
      const size = stat.size;
      if (size < SECTOR_SIZE) {
        throw new ImageError('too-small', `image ${path} is ${size} bytes, smaller than one 512-byte sector: grow it (e.g. truncate -s 1G ${path})`);
      }
      if (direct) buffered = await fsp.open(path, readOnly ? constants.O_RDONLY : constants.O_RDWR);
      const punchHole = !readOnly && (await probePunchHole(c, handle.fd, size));
      return new FileBackend(path, handle, buffered, size, readOnly, c, punchHole, options.aio);
    } catch (error) {
      await buffered?.close();
      await handle.close();
      throw error;
    }
  }

  /** Size of the image in bytes. */
  get size(): number {
    return this.bytes;
  }

  /** Reads the file at `offset` straight into `buffers` (guest memory); returns nothing when the page cache answered at once. */
  read(offset: number, buffers: readonly Uint8Array[]): Promise<void> | void {
    const readNow = this.readNow;
    if (readNow === undefined) return this.transfer(offset, buffers, false);
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    if (bytes === 0 || bytes > READ_NOW_MAX_BYTES) return this.transfer(offset, buffers, false);
    const n = readNow(this.handle.fd, offset, buffers);
    if (n === bytes) return;
    if (n > 0) return this.transfer(offset + n, skipBytes(buffers, n), false);
    // A kernel or file system without RWF_NOWAIT: stop trying.
    if (n === -EOPNOTSUPP || n === -EINVAL || n === -ENOSYS) this.readNow = undefined;
    // Not cached (EAGAIN), the end of the file or an I/O error: the thread pool reads it and reports any error.
    return this.transfer(offset, buffers, false);
  }

  /** Writes `buffers` (guest memory) straight to the file at `offset`. */
  write(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    return this.writer === undefined ? this.transfer(offset, buffers, true) : this.writer.write(offset, buffers);
  }

  /** fdatasync: every write that completed before is durable. */
  async flush(): Promise<void> {
    // The buffered descriptor shares the file: one fdatasync covers writes made through either.
    await this.handle.datasync();
  }

  /** Punches a hole where it can; otherwise nothing (DISCARD is a hint). */
  async discard(offset: number, length: number): Promise<void> {
    // Discard is a hint (spec 5.2.6.2: the device MAY deallocate): without hole punching there is nothing to do.
    if (this.punchHole) await this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  }

  /** Zeroes the range: a hole with `unmap` where possible, else FALLOC_FL_ZERO_RANGE, else written zeroes. */
  async writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    if (unmap && this.punchHole && (await this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length))) return;
    if (this.zeroRange && (await this.fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length))) return;
    this.zeroes ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      await this.write(offset + done, [this.zeroes.subarray(0, Math.min(ZERO_CHUNK, length - done))]);
    }
  }

  /** Truncates or extends the file to `size` bytes. */
  async resize(size: number): Promise<void> {
    if (this.readOnly) throw new Error(`image ${this.path} is open read-only and cannot be resized`);
    if (!Number.isSafeInteger(size) || size < SECTOR_SIZE) throw new RangeError(`image size ${size} is not an integer of at least ${SECTOR_SIZE}`);
    await this.handle.truncate(size);
    this.bytes = size;
  }

  /** Closes the image (and releases its lock). Later calls do nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer?.close();
    await this.buffered?.close();
    await this.handle.close();
  }

  /**
   * Runs fallocate; false when the file system does not support `mode`, which
   * is then not tried again.
   */
  private async fallocate(mode: number, offset: number, length: number): Promise<boolean> {
    try {
      await (this.libc as Libc).fallocate(this.handle.fd, mode, offset, length);
      return true;
    } catch (error) {
      if (!(error instanceof ErrnoError) || (error.code !== 'EOPNOTSUPP' && error.code !== 'ENOSYS')) throw error;
      if ((mode & FALLOC_FL_PUNCH_HOLE) !== 0) this.punchHole = false;
      else this.zeroRange = false;
      return false;
    }
  }

  /**
   * Moves the data; with O_DIRECT, a transfer refused for its alignment
   * (EINVAL) is done again through the buffered descriptor.
   */
  private transfer(offset: number, buffers: readonly Uint8Array[], toFile: boolean): Promise<void> {
    const direct = transfer(this.handle.fd, offset, buffers, toFile);
    const buffered = this.buffered;
    if (buffered === undefined) return direct;
    return direct.catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== 'EINVAL') throw error;
      return transfer(buffered.fd, offset, buffers, toFile);
    });
  }
}

/** Moves every byte of `buffers` to or from the file at `offset`, resuming after short transfers. */
function transfer(fd: number, offset: number, buffers: readonly Uint8Array[], toFile: boolean): Promise<void> {
  let left = 0;
  for (const b of buffers) left += b.length;
  if (left === 0) return RESOLVED;
  return new Promise((resolve, reject) => new Transfer(fd, offset, buffers, left, toFile, resolve, reject).next());
}

/**
 * One transfer in flight. A class rather than closures: the request path
 * runs this for every read and write, and one object with one bound
 * callback is the least it can allocate.
 */
class Transfer {
  private readonly fd: number;
  private list: readonly Uint8Array[];
  private position: number;
  private left: number;
  private readonly toFile: boolean;
  private readonly resolve: () => void;
  private readonly reject: (error: Error) => void;
  private readonly done: (error: NodeJS.ErrnoException | null, n: number) => void;

  constructor(fd: number, position: number, list: readonly Uint8Array[], left: number, toFile: boolean, resolve: () => void, reject: (error: Error) => void) {
    this.fd = fd;
    this.position = position;
    this.list = list;
    this.left = left;
    this.toFile = toFile;
    this.resolve = resolve;
    this.reject = reject;
    this.done = this.moved.bind(this);
  }

  /** Starts the next system call for what is left. */
  next(): void {
    const list = this.list;
    if (list.length === 1) {
      const b = list[0] as Uint8Array;
      if (this.toFile) write(this.fd, b, 0, b.length, this.position, this.done);
      else read(this.fd, b, 0, b.length, this.position, this.done);
    } else if (this.toFile) writev(this.fd, list as Uint8Array[], this.position, this.done);
    else readv(this.fd, list as Uint8Array[], this.position, this.done);
  }

  private moved(error: NodeJS.ErrnoException | null, n: number): void {
    if (error !== null) return this.reject(error);
    if (n === 0) return this.reject(endOfFile(this.position));
    this.left -= n;
    if (this.left === 0) return this.resolve();
    this.position += n;
    this.list = skipBytes(this.list, n);
    this.next();
  }
}

/**
 * Batches writes to `fd` through Linux AIO where available; none where the
 * kernel refuses a context (e.g. fs.aio-max-nr reached): writes then go
 * through the thread pool one by one.
 */
function aioWriter(c: Libc | null, fd: number): AioWriter | undefined {
  if (c?.aio === undefined) return undefined;
  try {
    return new AioWriter(c.aio, fd, (offset, buffers) => transfer(fd, offset, buffers, true));
  } catch {
    return undefined;
  }
}

function endOfFile(at: number): Error {
  return new Error(`unexpected end of the image at byte ${at}: was it truncated by another process?`);
}

function lockImage(c: Libc | null, fd: number, path: string, readOnly: boolean): void {
  if (c === null) return;
  try {
    c.flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB);
  } catch (error) {
    if (error instanceof ErrnoError && (error.code === 'EWOULDBLOCK' || error.code === 'EAGAIN')) {
      throw new ImageError('locked', `image ${path} is in use by another process: stop it, or open the image read-only in both`);
    }
    throw error;
  }
}

/**
 * Whether the file system punches holes: a hole punched past the end of the
 * file with KEEP_SIZE changes nothing, but file systems without support refuse
 * the mode before looking at the range.
 */
async function probePunchHole(c: Libc | null, fd: number, size: number): Promise<boolean> {
  if (c === null) return false;
  try {
    await c.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, size, SECTOR_SIZE);
    return true;
  } catch {
    return false;
  }
}

function openError(path: string, error: unknown, readOnly: boolean, direct: boolean): Error {
  const code = (error as { code?: unknown }).code;
  switch (code) {
    case 'ENOENT':
      return new ImageError('missing', `image ${path} does not exist: create it (e.g. truncate -s 1G ${path}) or fix the path`);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new ImageError('access', readOnly ? `image ${path} cannot be read: check its permissions` : `image ${path} cannot be opened for writing (${String(code)}): fix its permissions or open it read-only`);
    case 'EISDIR':
      return new ImageError('access', `image ${path} is a directory: give the path of a raw disk image`);
    case 'EINVAL':
      if (direct) return new ImageError('unsupported', `image ${path} is on a file system without O_DIRECT: open it without direct I/O`);
      return error as Error;
    default:
      return error instanceof Error ? error : new Error(String(error));
  }
}
