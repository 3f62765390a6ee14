import { createEventFd, drainEventFd, signalEventFd } from './eventfd.js';
import { Sys, allocNative, freeNative, raw } from './libc.js';

/** What a watcher is told when its descriptor is ready. */
export type ReadyHandler = (revents: number) => void;

/** A registration with the {@link Poller}: cancel it before closing the descriptor. */
export interface Watch {
  /** Stops delivering events; safe to call more than once. */
  cancel(): void;
}

interface Entry {
  readonly fd: number;
  readonly handler: ReadyHandler;
  active: boolean;
}

const POLLFD_SIZE = 8;

let shared: Poller | undefined;

/** The process-wide poller: one thread blocked in poll(2) serves every watcher in the process. */
export function sharedPoller(): Poller {
  shared ??= new Poller();
  return shared;
}

/**
 * Readiness of arbitrary file descriptors (Unix sockets carrying SCM_RIGHTS,
 * eventfds) inside Node's event loop, which has no API for them. A single
 * poll(2) runs on a koffi worker thread; its completion is delivered on the
 * main thread, where handlers consume what is ready (level-triggered) before the
 * next poll is issued. An eventfd in slot 0 interrupts a poll in flight when
 * the set of descriptors changes. With no watch left it stops polling, so it
 * does not keep the process alive.
 */
export class Poller {
  private readonly entries: Entry[] = [];
  private capacity = 0;
  private fds: { address: bigint; bytes: Uint8Array; view: DataView } | undefined;
  private polled: Entry[] = [];
  private readonly wakeFd: number;
  private inFlight = false;
  private dirty = false;
  private closed = false;

  /** Creates a poller; it holds one eventfd until {@link Poller.close}. */
  constructor() {
    this.wakeFd = createEventFd();
  }

  /** Calls `handler` on the main thread whenever `fd` is readable (or has an error or hang-up). */
  watch(fd: number, handler: ReadyHandler): Watch {
    if (this.closed) throw new Error('poller is closed');
    const entry: Entry = { fd, handler, active: true };
    this.entries.push(entry);
    this.changed();
    return {
      cancel: () => {
        if (!entry.active) return;
        entry.active = false;
        this.entries.splice(this.entries.indexOf(entry), 1);
        this.changed();
      },
    };
  }

  /** Stops polling and releases the wake eventfd. Watches must have been cancelled. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.entries) entry.active = false;
    this.entries.length = 0;
    if (this.inFlight) this.wake();
    else raw.close(this.wakeFd);
  }

  private changed(): void {
    if (this.inFlight) {
      if (!this.dirty) this.wake();
      this.dirty = true;
    } else {
      this.start();
    }
  }

  private wake(): void {
    signalEventFd(this.wakeFd);
  }

  private start(): void {
    if (this.closed || this.inFlight || this.entries.length === 0) return;
    const count = this.entries.length + 1;
    const fds = this.table(count);
    fds.view.setInt32(0, this.wakeFd, true);
    fds.view.setInt16(4, Sys.POLLIN, true);
    fds.view.setInt16(6, 0, true);
    this.polled = this.entries.slice();
    for (let i = 0; i < this.polled.length; i++) {
      const at = (i + 1) * POLLFD_SIZE;
      fds.view.setInt32(at, (this.polled[i] as Entry).fd, true);
      fds.view.setInt16(at + 4, Sys.POLLIN, true);
      fds.view.setInt16(at + 6, 0, true);
    }
    this.inFlight = true;
    this.dirty = false;
    raw.poll.async(fds.address, count, -1, (error: unknown, result: number) => this.done(error, result));
  }

  private done(error: unknown, result: number): void {
    this.inFlight = false;
    if (this.closed) {
      raw.close(this.wakeFd);
      return;
    }
    // A negative result (EINTR on the worker thread; errno stays there) just polls again.
    if (error !== null && error !== undefined) throw error;
    try {
      if (result > 0) this.dispatch();
    } finally {
      // Handlers have consumed what was ready; a throwing handler must not stop the others' events.
      this.start();
    }
  }

  private dispatch(): void {
    const view = (this.fds as { view: DataView }).view;
    if (view.getInt16(6, true) !== 0) drainEventFd(this.wakeFd);
    const polled = this.polled;
    for (let i = 0; i < polled.length; i++) {
      const revents = view.getInt16((i + 1) * POLLFD_SIZE + 6, true);
      const entry = polled[i] as Entry;
      // A watch cancelled meanwhile may name a descriptor number that was closed and reused.
      if (revents !== 0 && entry.active) entry.handler(revents);
    }
  }

  private table(count: number): { address: bigint; bytes: Uint8Array; view: DataView } {
    if (this.fds === undefined || count > this.capacity) {
      if (this.fds !== undefined) freeNative(this.fds.address);
      this.capacity = Math.max(16, count * 2);
      const native = allocNative(this.capacity * POLLFD_SIZE);
      this.fds = { ...native, view: new DataView(native.bytes.buffer, native.bytes.byteOffset, native.bytes.byteLength) };
    }
    return this.fds;
  }
}
