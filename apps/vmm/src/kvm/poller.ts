import { KvmError } from './errors.js';
import { EAGAIN, libc } from './libc.js';
import { createEventFd } from './vm.js';

const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x001;
/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
const EVENT_SIZE = 12;
const MAX_EVENTS = 32;

/**
 * Waits for eventfds (ioeventfds, irqfd resample fds) without blocking the
 * event loop: one epoll_wait runs at a time in the libuv thread pool (a koffi
 * async call), and its completion drains each ready eventfd and runs the
 * handler on the main thread.
 */
export class EventFdPoller {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly handlers = new Map<number, () => void>();
  private readonly events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  private readonly eventsView = new DataView(this.events.buffer);
  private readonly counter = new Uint8Array(8);
  private waiting = false;
  private closing = false;

  /** Creates the epoll set. Nothing is waited for until the first {@link add}. */
  constructor() {
    const c = libc();
    this.epfd = c.epollCreate1(0o2000000);
    if (this.epfd < 0) throw new KvmError('epoll_create1', c.errno());
    this.wakeFd = createEventFd();
    this.control(EPOLL_CTL_ADD, this.wakeFd);
  }

  /** Calls `handler` (on this thread) whenever `eventfd` is signalled; the counter is consumed first. */
  add(eventfd: number, handler: () => void): void {
    this.handlers.set(eventfd, handler);
    this.control(EPOLL_CTL_ADD, eventfd);
    this.arm();
  }

  /** Stops watching `eventfd` (the caller still owns and closes it). */
  remove(eventfd: number): void {
    if (!this.handlers.delete(eventfd)) return;
    this.control(EPOLL_CTL_DEL, eventfd);
  }

  /** Ends the pending wait and closes the epoll set. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.waiting) this.signal(this.wakeFd);
    else this.release();
  }

  private arm(): void {
    if (this.waiting || this.closing) return;
    this.waiting = true;
    libc().epollWaitAsync(this.epfd, this.events, MAX_EVENTS, -1, (error, count) => {
      this.waiting = false;
      if (this.closing) {
        this.release();
        return;
      }
      if (error === null || error === undefined) this.dispatch(count);
      if (this.handlers.size > 0) this.arm();
    });
  }

  private dispatch(count: number): void {
    const c = libc();
    for (let i = 0; i < count; i++) {
      const fd = Number(this.eventsView.getBigUint64(i * EVENT_SIZE + 4, true));
      if (c.read(fd, this.counter, 8) < 0 && c.errno() === EAGAIN) continue;
      this.handlers.get(fd)?.();
    }
  }

  private signal(fd: number): void {
    new DataView(this.counter.buffer).setBigUint64(0, 1n, true);
    libc().write(fd, this.counter, 8);
  }

  private control(op: number, fd: number): void {
    const event = new Uint8Array(EVENT_SIZE);
    const v = new DataView(event.buffer);
    v.setUint32(0, EPOLLIN, true);
    v.setBigUint64(4, BigInt(fd), true);
    if (libc().epollCtl(this.epfd, op, fd, event) < 0) throw new KvmError('epoll_ctl', libc().errno());
  }

  private release(): void {
    const c = libc();
    c.close(this.wakeFd);
    c.close(this.epfd);
  }
}
