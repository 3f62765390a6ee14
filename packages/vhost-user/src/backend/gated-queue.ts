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

  get index(): number {
    return this.inner.index;
  }

  get size(): number {
    return this.inner.size;
  }

  get packed(): boolean {
    return this.inner.packed;
  }

  get inFlight(): number {
    return this.inner.inFlight;
  }

  get broken(): boolean {
    return this.inner.broken;
  }

  get detached(): boolean {
    return this.inner.detached;
  }

  get notificationData(): number {
    return this.inner.notificationData;
  }

  pop(): DescriptorChain | null {
    return this.closed ? null : this.inner.pop();
  }

  undoPop(chain: DescriptorChain): void {
    this.inner.undoPop(chain);
  }

  addUsed(chain: DescriptorChain, len: number): void {
    this.inner.addUsed(chain, len);
  }

  flush(): boolean {
    return this.inner.flush();
  }

  enableNotification(): boolean {
    return this.closed ? false : this.inner.enableNotification();
  }

  disableNotification(): void {
    this.inner.disableNotification();
  }

  setNotificationData(data: number): void {
    this.inner.setNotificationData(data);
  }

  position(): QueuePosition {
    return this.inner.position();
  }

  detach(): void {
    this.inner.detach();
  }
}
