/** Polls before a backend gives up on a register reaching its value: about ten seconds at Linux's msleep(1) pace. */
const MAX_POLLS = 10_000;

/**
 * Waits until `done()` holds, reading it again every millisecond as Linux's
 * drivers poll with msleep(1) (device_status after a reset, queue_reset after
 * a queue reset). Returns nothing when it holds at once, so a device that
 * finishes within the register write keeps the caller synchronous; otherwise a
 * promise that rejects with `failure` if the device never gets there.
 */
export function pollUntil(done: () => boolean, failure: string): void | Promise<void> {
  if (done()) return undefined;
  return (async () => {
    for (let poll = 0; poll < MAX_POLLS; poll++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (done()) return;
    }
    throw new Error(failure);
  })();
}

/** Runs `next` once `pending` (a backend step that may finish later) is done: at once, or when its promise settles. */
export function andThen<T>(pending: void | Promise<void>, next: () => T): T | Promise<T> {
  return pending instanceof Promise ? pending.then(next) : next();
}
