import { Errno, Sys, SysError, check, lastErrno, raw } from './libc.js';

const ONE = new BigUint64Array([1n]);
const sink = new Uint8Array(8);

/** Creates a non-blocking, close-on-exec eventfd. */
export function createEventFd(): number {
  return check('eventfd', raw.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC));
}

/** Adds 1 to an eventfd's counter (a kick, a call, an error signal). */
export function signalEventFd(fd: number): void {
  if (raw.write(fd, ONE, 8) < 0) {
    const errno = lastErrno();
    // EAGAIN: the counter is saturated, so the reader has a pending wake-up anyway.
    if (errno !== Errno.EAGAIN) throw new SysError('write(eventfd)', errno);
  }
}

/**
 * Resets an eventfd's counter and returns whether it was signalled. Reading an
 * eventfd that someone else made blocking would stall the event loop, so only
 * call this after poll reported the descriptor readable.
 */
export function drainEventFd(fd: number): boolean {
  return raw.read(fd, sink, 8) === 8;
}
