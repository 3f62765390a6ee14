import koffi from 'koffi';
import { Sys } from './libc.js';

interface PollEvents {
  readonly readable: boolean;
  readonly writable: boolean;
  readonly disconnect: boolean;
}

/** What a watcher is told when its descriptor is ready: POLLIN, POLLHUP and POLLERR bits. */
export type ReadyHandler = (revents: number) => void;

/** A registration made with {@link watchReadable}: cancel it before closing the descriptor. */
export interface Watch {
  /** Stops delivering events; safe to call more than once. */
  cancel(): void;
}

/**
 * Calls `handler` on the main thread whenever `fd` is readable, has hung up
 * or failed. Node offers this only for its own socket types; koffi's
 * `node.poll` puts any descriptor (a Unix socket carrying SCM_RIGHTS, an
 * eventfd) into libuv's epoll set, so a kick costs no thread hop. Readiness is
 * level-triggered: the handler must consume what is ready.
 */
export function watchReadable(fd: number, handler: ReadyHandler): Watch {
  const ready = (status: number, events: PollEvents): void => {
    if (status < 0) handler(Sys.POLLERR);
    else handler((events.readable ? Sys.POLLIN : 0) | (events.disconnect ? Sys.POLLHUP : 0));
  };
  // koffi calls back with libuv's (status, events); its typings name only the events.
  const handle = koffi.node.poll(fd, { readable: true, disconnect: true }, ready as unknown as (events: PollEvents) => void);
  let active = true;
  return {
    cancel: () => {
      if (!active) return;
      active = false;
      handle.close();
    },
  };
}
