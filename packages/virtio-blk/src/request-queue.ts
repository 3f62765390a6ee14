import { ChainFault, type DescriptorChain, type Virtqueue } from '@virtio-ts/virtqueue';
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from './constants.js';
import { startRequest, type DiskState } from './request.js';

const setImmediateFn = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;

/**
 * Runs `callback` once the I/O completions at hand have been delivered. In
 * Node, setImmediate: the check phase follows the poll phase, which delivers
 * every completed operation, so a batch is one loop turn. Elsewhere (browsers,
 * where backends complete in promise jobs) a microtask.
 */
const afterIo: (callback: () => void) => void = setImmediateFn === undefined ? queueMicrotask : (callback) => setImmediateFn(callback);

/** Runs `callback` in a later turn of the event loop, letting other work run first. */
const nextTurn: (callback: () => void) => void = setImmediateFn === undefined ? (callback) => setTimeout(callback, 0) : (callback) => setImmediateFn(callback);

/** What a {@link RequestQueue} reports to its device. */
export interface RequestQueueHost {
  /** A backend operation started. */
  started(): void;
  /** A backend operation settled. */
  finished(): void;
  /** The queue hit a device bug (never a guest error) and stopped: set DEVICE_NEEDS_RESET. */
  needsReset(reason: string): void;
}

/**
 * Serves one request queue. Requests start as they are popped and complete
 * as their backend I/O settles, in any order; used entries are published and
 * the driver interrupted once per batch of completions (one interrupt per
 * batch, not per request). After {@link stop} late completions are dropped
 * without touching the ring or their status bytes; {@link stop} tells when
 * the backend operations it cannot recall (a read landing in a guest buffer)
 * are over.
 */
export class RequestQueue {
  private readonly queue: Virtqueue;
  private readonly disk: DiskState;
  private readonly host: RequestQueueHost;
  private flushScheduled = false;
  private drainScheduled = false;
  /** Available buffer notifications are off until the scheduled flush looks at the ring again. */
  private quiet = false;
  private stopped = false;
  /** Backend operations started and not yet settled. */
  private inFlight = 0;
  /** Settles once {@link inFlight} drops to 0 after {@link stop}. */
  private idle: { promise: Promise<void>; wake: () => void } | undefined;
  private readonly flushNow = (): void => {
    if (this.stopped) {
      this.flushScheduled = false;
      return;
    }
    // Requests the driver added while notifications were off join this batch (spec 2.7.10: enable, then check again).
    if (this.quiet && this.wake()) this.take();
    this.flushScheduled = false;
    this.queue.flush();
  };
  private readonly drainNow = (): void => {
    this.drainScheduled = false;
    this.drain();
  };

  /** Serves `queue` for `disk`. */
  constructor(queue: Virtqueue, disk: DiskState, host: RequestQueueHost) {
    this.queue = queue;
    this.disk = disk;
    this.host = host;
  }

  /**
   * Starts every available request. Notifications are off while it does
   * (spec 2.7.10), and stay off while a completion batch waits for its flush,
   * which takes what the driver added meanwhile: a driver that adds requests
   * one by one notifies once per batch instead of once per request (a VM exit
   * each, in a VMM).
   */
  drain(): void {
    while (!this.stopped) {
      if (!this.quiet) {
        this.queue.disableNotification();
        this.quiet = true;
      }
      this.take();
      // The scheduled flush, or the drain of the next turn, turns notifications back on.
      if (this.flushScheduled || this.drainScheduled || this.stopped || !this.wake()) return;
    }
  }

  /** Turns notifications back on; true if requests arrived before they were (the caller takes them). */
  private wake(): boolean {
    this.quiet = false;
    return this.queue.enableNotification();
  }

  /**
   * Starts the available requests, at most one lap of the ring per call so
   * that a driver that keeps adding cannot starve the event loop; the rest
   * are taken in a later turn.
   */
  private take(): void {
    const queue = this.queue;
    for (let i = 0; i < queue.size; i++) {
      if (this.stopped) return;
      const chain = queue.pop();
      if (chain === null) return;
      this.start(chain);
    }
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      nextTurn(this.drainNow);
    }
  }

  /**
   * Stops serving: pending and late completions are dropped. While backend
   * operations this queue started are still running, returns a promise that
   * settles once they all have, after which nothing they started touches
   * guest memory again.
   */
  stop(): Promise<void> | undefined {
    this.stopped = true;
    if (this.inFlight === 0) return undefined;
    if (this.idle === undefined) {
      let wake = (): void => undefined;
      const promise = new Promise<void>((resolve) => (wake = resolve));
      this.idle = { promise, wake };
    }
    return this.idle.promise;
  }

  private start(chain: DescriptorChain): void {
    // A malformed chain or one without room for a status byte cannot carry a status: complete it empty.
    if (chain.fault !== ChainFault.NONE || chain.writableLength === 0) {
      this.queue.addUsed(chain, 0);
      this.scheduleFlush();
      return;
    }
    let outcome;
    try {
      outcome = startRequest(chain, this.disk);
    } catch {
      // A backend that throws instead of rejecting fails only its request.
      outcome = VIRTIO_BLK_S_IOERR;
    }
    if (typeof outcome === 'number') {
      this.complete(chain, outcome);
      return;
    }
    this.host.started();
    this.inFlight++;
    outcome.then(
      () => {
        this.settle();
        this.complete(chain, VIRTIO_BLK_S_OK);
      },
      () => {
        this.settle();
        this.complete(chain, VIRTIO_BLK_S_IOERR);
      },
    );
  }

  private settle(): void {
    this.host.finished();
    if (--this.inFlight === 0) this.idle?.wake();
  }

  /**
   * Writes the status into the last writable byte. The used length is what
   * was really written (spec 2.7.8, and the note of spec 5.2.6.4 on devices
   * that reported more): the data a successful request filled (the writer's
   * position, which startRequest leaves after it) plus the status byte; a
   * failed request reports the status byte alone, since its data part holds
   * nothing the driver may rely on (a failed read may have filled part of it).
   * Runs from promise callbacks, where a throw would become an unhandled
   * rejection: a failure here stops the queue instead.
   */
  private complete(chain: DescriptorChain, status: number): void {
    if (this.stopped) return;
    try {
      const writer = chain.writer;
      const filled = status === VIRTIO_BLK_S_OK ? writer.bytesWritten : 0;
      writer.skip(writer.remaining - 1);
      writer.writeU8(status);
      this.queue.addUsed(chain, filled + 1);
    } catch (error) {
      void this.stop();
      this.host.needsReset(`virtio-blk queue ${this.queue.index}: completing a request failed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    afterIo(this.flushNow);
  }
}
