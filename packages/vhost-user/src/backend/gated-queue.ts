import type { DescriptorChain, QueuePosition, Virtqueue } from '@virtio-ts/virtqueue';

/**
 * The queue a device is handed: the real queue behind a gate the back-end can
 * close. A closed gate makes pop() return nothing while completions still go
 * through, so a ring being stopped (GET_VRING_BASE) drains its requests in
 * flight before its position is reported to the front-end.
 */
export class GatedQueue implements Virtqueue {
  /** The queue behind the gate. */
  readonly inner: Virtqueue;
  /** While true, the device gets no new chains. */
  closed = false;

  /** Puts `inner` behind an open gate. */
  constructor(inner: Virtqueue) {
    this.inner = inner;
  }

  /** @inheritDoc */
  get index(): number {
    return this.inner.index;
  }

  /** @inheritDoc */
  get size(): number {
    return this.inner.size;
  }

  /** @inheritDoc */
  get packed(): boolean {
    return this.inner.packed;
  }

  /** @inheritDoc */
  get inFlight(): number {
    return this.inner.inFlight;
  }

  /** @inheritDoc */
  get broken(): boolean {
    return this.inner.broken;
  }

  /** @inheritDoc */
  get detached(): boolean {
    return this.inner.detached;
  }

  /** @inheritDoc */
  get notificationData(): number {
    return this.inner.notificationData;
  }

  /**
   * Returns null while the gate is closed.
   * @inheritDoc
   */
  pop(): DescriptorChain | null {
    return this.closed ? null : this.inner.pop();
  }

  /** @inheritDoc */
  undoPop(chain: DescriptorChain): void {
    this.inner.undoPop(chain);
  }

  /**
   * Completions pass whether the gate is open or closed, so a stopping ring drains.
   * @inheritDoc
   */
  addUsed(chain: DescriptorChain, len: number): void {
    this.inner.addUsed(chain, len);
  }

  /** @inheritDoc */
  flush(): boolean {
    return this.inner.flush();
  }

  /**
   * Returns false while the gate is closed, so the device does not go looking for chains it would
   * not get.
   * @inheritDoc
   */
  enableNotification(): boolean {
    return this.closed ? false : this.inner.enableNotification();
  }

  /** @inheritDoc */
  disableNotification(): void {
    this.inner.disableNotification();
  }

  /** @inheritDoc */
  setNotificationData(data: number): void {
    this.inner.setNotificationData(data);
  }

  /** @inheritDoc */
  position(): QueuePosition {
    return this.inner.position();
  }

  /** @inheritDoc */
  detach(): void {
    this.inner.detach();
  }
}
