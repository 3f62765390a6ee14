import { constants } from 'node:os';
import { getWord64, setWord64, skipBytes } from './iovec.js';
import { ErrnoError, type LinuxAio } from './libc.js';

const { EINTR, EINVAL, ENOSYS } = constants.errno;

/** aio_abi.h: IOCB_CMD_PWRITEV; the iocb's aio_buf is then an iovec array and aio_nbytes its length. */
const IOCB_CMD_PWRITEV = 8;
/** Words (32-bit) in a struct iocb and a struct io_event. */
const IOCB_WORDS = 16;
const EVENT_WORDS = 8;
/** Operations one context keeps in flight; io_submit takes the rest at its next batch. */
const MAX_EVENTS = 256;

/** A write waiting for its batch. */
interface QueuedWrite {
  readonly offset: number;
  readonly buffers: readonly Uint8Array[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** How a write that AIO could not finish is done instead: the thread pool's positional write. */
export type WriteFallback = (offset: number, buffers: readonly Uint8Array[]) => Promise<void>;

/**
 * Buffered positional writes handed to the kernel in batches: every write
 * requested in one turn of the event loop (a notification's worth of
 * requests) goes to a single io_submit on one thread-pool thread, instead of
 * one thread-pool job, wake-up and completion hop per write. For a buffered
 * file io_submit performs the writes before it returns (only O_DIRECT I/O is
 * asynchronous in Linux AIO), so their events are ready when it does; a
 * file system that completes later is waited for on the pool as well.
 * The price: a batch runs on one thread, in turn, and its completions come
 * back together, so the pool and the event loop take turns instead of
 * overlapping; less CPU per write, fewer writes per second on an idle host
 * (measured in the package README's benchmark).
 * A lone write, a short write's remainder and anything io_submit refuses go
 * through `fallback`; a kernel without AIO turns batching off.
 */
export class AioWriter {
  private readonly aio: LinuxAio;
  private readonly context: number;
  private readonly fd: number;
  private readonly fallback: WriteFallback;
  private queued: QueuedWrite[] = [];
  private scheduled = false;
  private enabled = true;
  /**
   * Submitted writes by the aio_data their iocb carries: a context's events
   * come back in any order and for any batch, whichever call collects them.
   */
  private readonly outstanding = new Map<number, QueuedWrite>();
  private nextId = 0;
  /** io_submit calls running on the thread pool. */
  private submitting = 0;
  /** An io_getevents waiting on the thread pool, for writes the kernel finishes after io_submit. */
  private waiting = false;
  private readonly events = new Uint32Array(MAX_EVENTS * EVENT_WORDS);
  private readonly waitedEvents = new Uint32Array(MAX_EVENTS * EVENT_WORDS);
  private drained: (() => void) | undefined;
  private readonly submitQueued = (): void => this.submit();

  /** Writes to `fd` through a new AIO context. Throws ErrnoError when the kernel has none to give. */
  constructor(aio: LinuxAio, fd: number, fallback: WriteFallback) {
    this.aio = aio;
    this.fd = fd;
    this.fallback = fallback;
    this.context = aio.setup(MAX_EVENTS);
  }

  /** Writes `buffers` at `offset` with the next batch. */
  write(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    if (!this.enabled) return this.fallback(offset, buffers);
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    return new Promise((resolve, reject) => {
      this.queued.push({ offset, buffers, bytes, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // A microtask: the device starts every request a notification made available before yielding.
      queueMicrotask(this.submitQueued);
    });
  }

  /** Waits for every submitted write, then releases the AIO context. */
  async close(): Promise<void> {
    this.enabled = false;
    this.submit();
    if (this.submitting > 0 || this.outstanding.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.aio.destroy(this.context);
  }

  private submit(): void {
    this.scheduled = false;
    const all = this.queued;
    this.queued = [];
    if (all.length === 1 || !this.enabled) {
      for (const w of all) this.writeAlone(w);
      return;
    }
    for (let first = 0; first < all.length; first += MAX_EVENTS) this.submitBatch(all.slice(first, first + MAX_EVENTS));
  }

  private writeAlone(w: QueuedWrite): void {
    this.fallback(w.offset, w.buffers).then(w.resolve, w.reject);
  }

  /**
   * One io_submit of `batch`. The pointers to the iocbs come first in one
   * array with the iocbs and their iovecs, so the argument koffi holds for
   * the call keeps all of them alive until it returns.
   */
  private submitBatch(batch: QueuedWrite[]): void {
    const n = batch.length;
    let segments = 0;
    for (const w of batch) segments += w.buffers.length;
    const words = new Uint32Array(2 * n + n * IOCB_WORDS + 4 * segments);
    const base = this.aio.addresses.of(new Uint8Array(words.buffer));
    const ids: number[] = [];
    let iovecAt = 2 * n + n * IOCB_WORDS;
    for (let i = 0; i < n; i++) {
      const w = batch[i] as QueuedWrite;
      const id = this.nextId;
      this.nextId = (this.nextId + 1) % Number.MAX_SAFE_INTEGER;
      ids.push(id);
      this.outstanding.set(id, w);
      const iocb = 2 * n + i * IOCB_WORDS;
      setWord64(words, iocb, id); // aio_data: the id the event brings back
      words[iocb + 4] = IOCB_CMD_PWRITEV; // aio_lio_opcode, aio_reqprio 0 (little-endian halves)
      words[iocb + 5] = this.fd; // aio_fildes
      setWord64(words, iocb + 6, base + 4 * iovecAt); // aio_buf
      setWord64(words, iocb + 8, w.buffers.length); // aio_nbytes: the iovec count
      setWord64(words, iocb + 10, w.offset); // aio_offset
      this.aio.addresses.writeIovecs(words, iovecAt, w.buffers);
      iovecAt += 4 * w.buffers.length;
      setWord64(words, 2 * i, base + 4 * iocb);
    }
    this.submitting++;
    this.aio.submit(this.context, n, words, (submitted) => this.submitted(ids, submitted));
  }

  /** io_submit returned: what it did not take goes through the fallback; what it did is collected. */
  private submitted(ids: readonly number[], submitted: number): void {
    this.submitting--;
    if (submitted === -ENOSYS || submitted === -EINVAL) this.enabled = false;
    // A failed call took nothing; a full context (EAGAIN) took the first `submitted`.
    for (const id of ids.slice(Math.max(submitted, 0))) {
      const w = this.outstanding.get(id) as QueuedWrite;
      this.outstanding.delete(id);
      this.writeAlone(w);
    }
    this.collect();
  }

  /**
   * Completes every write whose event is ready. Writes to a buffered file are
   * done when io_submit returns; should any still be running once no
   * io_submit is left to come back, one io_getevents waits for them on the
   * thread pool.
   */
  private collect(): void {
    for (;;) {
      const count = this.aio.takeEvents(this.context, MAX_EVENTS, this.events);
      if (count <= 0) break;
      this.complete(this.events, count);
    }
    if (this.outstanding.size > 0 && this.submitting === 0 && !this.waiting) {
      this.waiting = true;
      this.aio.waitEvents(this.context, 1, MAX_EVENTS, this.waitedEvents, (count) => {
        this.waiting = false;
        if (count > 0) this.complete(this.waitedEvents, count);
        else if (count !== -EINTR) this.failOutstanding(-count);
        this.collect();
      });
      return;
    }
    if (this.submitting === 0 && this.outstanding.size === 0) this.drained?.();
  }

  private complete(events: Uint32Array, count: number): void {
    for (let k = 0; k < count; k++) {
      const id = getWord64(events, k * EVENT_WORDS);
      const w = this.outstanding.get(id);
      if (w === undefined) continue;
      this.outstanding.delete(id);
      const result = getWord64(events, k * EVENT_WORDS + 4); // res: bytes written or -errno
      if (result === w.bytes) w.resolve();
      else if (result < 0) w.reject(new ErrnoError('io_submit(pwritev)', -result));
      else this.fallback(w.offset + result, skipBytes(w.buffers, result)).then(w.resolve, w.reject);
    }
  }

  /** The context cannot report its events: every write it holds fails, and later writes bypass it. */
  private failOutstanding(errno: number): void {
    this.enabled = false;
    for (const w of this.outstanding.values()) w.reject(new ErrnoError('io_getevents', errno));
    this.outstanding.clear();
  }
}
