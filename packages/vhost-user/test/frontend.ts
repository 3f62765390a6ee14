/**
 * A vhost-user front-end for tests: it speaks the protocol over a real Unix
 * socket, shares real memfd memory and eventfds, and drives the rings with the
 * guest-side ring builders of @virtio-ts/virtqueue/testing — what QEMU and the
 * guest driver do together, in one process.
 */
import { GuestMemory, type QueueConfig } from '@virtio-ts/virtqueue';
import { HeaderFlags } from '../src/protocol/constants.js';
import { encodeMessage, type Message } from '../src/protocol/message.js';
import { MessageReader } from '../src/protocol/reader.js';
import { createEventFd, drainEventFd, signalEventFd } from '../src/sys/eventfd.js';
import { Sys, check, closeQuietly, raw } from '../src/sys/libc.js';
import { mapShared, type SharedMapping } from '../src/sys/mapping.js';
import { UnixChannel, connectUnix } from '../src/sys/unix-socket.js';
import { watchReadable, type Watch } from '../src/sys/watch.js';

/** Where the test guest's RAM sits, in guest-physical and in (pretend) front-end user addresses. */
export const GUEST_BASE = 0x100000;
export const USER_BASE = 0x7f1200000000;

/** Shared guest RAM: a memfd mapped here, as the front-end (and the guest) see it. */
export class SharedRam {
  readonly fd: number;
  readonly size: number;
  readonly memory: GuestMemory;
  private readonly mapping: SharedMapping;

  constructor(size: number) {
    this.size = size;
    this.fd = check('memfd_create', raw.memfdCreate('vhost-user-test', Sys.MFD_CLOEXEC));
    check('ftruncate', raw.ftruncate(this.fd, size));
    this.mapping = mapShared(this.fd, 0, size);
    this.memory = new GuestMemory([{ guestAddress: GUEST_BASE, buffer: this.mapping.pieces[0] as ArrayBuffer }]);
  }

  /** The front-end user address of guest-physical address `gpa`. */
  user(gpa: number): number {
    return gpa - GUEST_BASE + USER_BASE;
  }

  close(): void {
    this.mapping.release();
    closeQuietly(this.fd);
  }
}

/** The payload of a memory table with one region covering `ram`. */
export function memTablePayload(ram: SharedRam, regionSize = ram.size): Uint8Array {
  const bytes = new Uint8Array(8 + 32);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 1, true);
  view.setBigUint64(8, BigInt(GUEST_BASE), true);
  view.setBigUint64(16, BigInt(regionSize), true);
  view.setBigUint64(24, BigInt(USER_BASE), true);
  view.setBigUint64(32, 0n, true);
  return bytes;
}

/** The payload of a vring address description for `config` (guest-physical) in `ram`. */
export function vringAddrPayload(index: number, ram: SharedRam, config: QueueConfig): Uint8Array {
  const bytes = new Uint8Array(40);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, index, true);
  view.setBigUint64(8, BigInt(ram.user(config.descAddr)), true);
  view.setBigUint64(16, BigInt(ram.user(config.deviceAddr)), true);
  view.setBigUint64(24, BigInt(ram.user(config.driverAddr)), true);
  return bytes;
}

/** A connected front-end. Replies are awaited without blocking the event loop the back-end shares. */
export class TestFrontend {
  readonly channel: UnixChannel;
  private readonly reader = new MessageReader();
  private readonly received: (Message | null)[] = [];
  private waiter: (() => void) | undefined;
  private watch: Watch | undefined;

  private constructor(fd: number) {
    this.channel = new UnixChannel(fd);
    this.watch = watchReadable(fd, () => this.readable());
  }

  /** Connects to the back-end at `path`. */
  static connect(path: string): TestFrontend {
    return new TestFrontend(connectUnix(path));
  }

  /** Sends a request without waiting for anything. */
  request(request: number, payload: Uint8Array = new Uint8Array(0), options: { fds?: number[]; needReply?: boolean } = {}): void {
    this.channel.send(encodeMessage(request, options.needReply === true ? HeaderFlags.NEED_REPLY : 0, payload), options.fds ?? []);
  }

  /** Sends a request and resolves with the reply message. */
  async call(request: number, payload: Uint8Array = new Uint8Array(0), options: { fds?: number[]; needReply?: boolean } = {}): Promise<Message> {
    this.request(request, payload, options);
    const reply = await this.next();
    if (reply === null) throw new Error('the back-end closed the connection');
    if (reply.request !== request || (reply.flags & HeaderFlags.REPLY) === 0) throw new Error(`unexpected reply ${reply.request}`);
    return reply;
  }

  /** Sends a request with NEED_REPLY and resolves with the acknowledgement's value (0: success). */
  async ack(request: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = []): Promise<bigint> {
    const reply = await this.call(request, payload, { fds, needReply: true });
    return reply.payload.getBigUint64(0, true);
  }

  /** The next message from the back-end, or null once it closed the connection. */
  async next(): Promise<Message | null> {
    while (this.received.length === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
    return this.received.shift() as Message | null;
  }

  /** Resolves once the back-end closed the connection. */
  async closedByPeer(): Promise<void> {
    for (;;) if ((await this.next()) === null) return;
  }

  /** Sends raw bytes (for malformed-message tests). */
  sendRaw(bytes: Uint8Array): void {
    this.channel.send(bytes);
  }

  close(): void {
    this.watch?.cancel();
    this.watch = undefined;
    this.channel.close();
  }

  private readable(): void {
    try {
      for (;;) {
        const message = this.reader.next(this.channel);
        if (message === undefined) break;
        this.received.push(message);
        if (message === null) {
          this.watch?.cancel();
          this.watch = undefined;
          break;
        }
      }
    } catch {
      // A malformed reply: treat the connection as gone.
      this.received.push(null);
      this.watch?.cancel();
      this.watch = undefined;
    } finally {
      const wake = this.waiter;
      this.waiter = undefined;
      wake?.();
    }
  }
}

/** An eventfd the test owns, with a promise for its next signal (for call fds). */
export class TestEventFd {
  readonly fd = createEventFd();
  private watch: Watch | undefined;
  private signals = 0;
  private waiter: (() => void) | undefined;

  constructor(watch: boolean) {
    if (watch) {
      this.watch = watchReadable(this.fd, () => {
        if (drainEventFd(this.fd)) this.signals++;
        const wake = this.waiter;
        this.waiter = undefined;
        wake?.();
      });
    }
  }

  /** Adds 1 to the counter (a kick). */
  signal(): void {
    signalEventFd(this.fd);
  }

  /** Resolves once the eventfd has been signalled since the last call. */
  async signalled(): Promise<void> {
    while (this.signals === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
    this.signals = 0;
  }

  close(): void {
    this.watch?.cancel();
    closeQuietly(this.fd);
  }
}
