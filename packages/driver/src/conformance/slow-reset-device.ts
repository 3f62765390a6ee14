import { LoopbackDevice } from '../loopback-device.js';

/**
 * The {@link LoopbackDevice} with resets that finish only when told: reset()
 * and resetQueue() do their work and return a promise that settles at
 * {@link finishResets}, as a device's do while its in-flight I/O is still
 * touching guest memory (spec 2.4, 2.6.1). For testing that transports report
 * a reset as under way until then, and that drivers wait for it.
 */
export class SlowResetDevice extends LoopbackDevice {
  private finishers: (() => void)[] = [];

  /** Device and queue resets started and not finished yet. */
  get resetsUnderWay(): number {
    return this.finishers.length;
  }

  /** The loopback device's reset, finishing at {@link finishResets}. */
  override reset(): Promise<void> {
    super.reset();
    return this.underWay();
  }

  /** The loopback device's queue reset, finishing at {@link finishResets}. */
  override resetQueue(index: number): Promise<void> {
    super.resetQueue(index);
    return this.underWay();
  }

  /** Finishes every reset under way. */
  finishResets(): void {
    const finishers = this.finishers;
    this.finishers = [];
    for (const finish of finishers) finish();
  }

  private underWay(): Promise<void> {
    return new Promise((resolve) => this.finishers.push(resolve));
  }
}
