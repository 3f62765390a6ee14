/**
 * Coalesces flushes without weakening them. A caller needs a flush that
 * starts after its call (everything that completed before the call is then
 * covered). Callers arriving while a flush runs share the single flush that
 * starts when it ends; callers arriving while nothing runs start one at once.
 * A burst of FLUSH requests, or of write-through writes, thus costs at most
 * two backend flushes instead of one each.
 */
export class FlushSequencer {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private readonly flushBackend: () => Promise<void>;

  /** Wraps the backend's flush. */
  constructor(flushBackend: () => Promise<void>) {
    this.flushBackend = flushBackend;
  }

  /** Resolves once a backend flush that started after this call has completed. */
  flush(): Promise<void> {
    const running = this.running;
    if (running === undefined) return this.start();
    if (this.queued === undefined) {
      const after = (): Promise<void> => {
        this.queued = undefined;
        return this.start();
      };
      this.queued = running.then(after, after);
    }
    return this.queued;
  }

  private start(): Promise<void> {
    const run = (async () => this.flushBackend())();
    const done = (): void => {
      if (this.running === run) this.running = undefined;
    };
    this.running = run;
    run.then(done, done);
    return run;
  }
}
