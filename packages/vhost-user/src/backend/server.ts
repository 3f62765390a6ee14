import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { VirtioDevice } from '@virtio-ts/virtqueue';
import { Errno, SysError, closeQuietly } from '../sys/libc.js';
import { watchReadable, type Watch } from '../sys/watch.js';
import { acceptUnix, connectUnix, listenUnix } from '../sys/unix-socket.js';
import { Session } from './session.js';

/** Options for {@link VhostUserServer}. */
export interface VhostUserServerOptions {
  /** Path of the Unix socket to listen on. It must not exist, unless `replaceStaleSocket` is set. */
  readonly socketPath: string;
  /** Replace a socket file left at `socketPath` by a back-end that is gone (connecting to it is refused). Default false. */
  readonly replaceStaleSocket?: boolean;
  /** Memory slots offered to front-ends that configure memory region by region. Default 32. */
  readonly maxMemSlots?: number;
  /** Diagnostics sink. Default: none. */
  readonly log?: (message: string) => void;
  /** Protocol trace sink: one line per request received. Default: none. */
  readonly trace?: (message: string) => void;
}

/** Thrown by {@link VhostUserServer.listen} when the socket path is in use. */
export class SocketInUseError extends Error {
  /** The path. */
  readonly socketPath: string;

  /** Creates the error for `socketPath`. */
  constructor(socketPath: string, why: string) {
    super(`socket path ${socketPath} ${why}`);
    this.name = 'SocketInUseError';
    this.socketPath = socketPath;
  }
}

/**
 * Serves one {@link VirtioDevice} to a vhost-user front-end (QEMU,
 * cloud-hypervisor, ...) on a Unix socket. One front-end at a time: a second
 * connection is closed at once. When the front-end goes away the device is
 * reset and the server waits for the next one, so a front-end that reconnects
 * (QEMU's `-chardev socket,reconnect=N`) finds it ready.
 */
export class VhostUserServer {
  /** The device served. */
  readonly device: VirtioDevice;
  private readonly options: VhostUserServerOptions;
  private readonly log: (message: string) => void;
  private listenFd = -1;
  private listenWatch: Watch | undefined;
  private session: Session | undefined;
  private readonly idleWaiters: (() => void)[] = [];

  /** Creates the server; nothing listens until {@link VhostUserServer.listen}. */
  constructor(device: VirtioDevice, options: VhostUserServerOptions) {
    this.device = device;
    this.options = options;
    this.log = options.log ?? (() => undefined);
    device.attach?.({
      configChanged: () => this.session?.configChanged(),
      needsReset: (reason) => (this.session === undefined ? this.log(`DEVICE_NEEDS_RESET: ${reason}`) : this.session.needsReset(reason)),
    });
  }

  /** Front-ends served since {@link VhostUserServer.listen} (refused extra connections do not count). */
  connections = 0;

  /** True while a front-end is connected. */
  get connected(): boolean {
    return this.session !== undefined;
  }

  /** Binds the socket and starts accepting. Throws {@link SocketInUseError} if the path is taken. */
  listen(): void {
    const path = this.options.socketPath;
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw new SocketInUseError(path, 'exists and is not a socket; pick another path');
      if (this.options.replaceStaleSocket !== true) throw new SocketInUseError(path, 'already exists; remove it or pick another path');
      if (!isStale(path)) throw new SocketInUseError(path, 'is in use by another back-end; stop it or pick another path');
      unlinkSync(path);
    }
    try {
      this.listenFd = listenUnix(path);
    } catch (error) {
      if (error instanceof SysError && error.errno === Errno.EADDRINUSE) throw new SocketInUseError(path, 'is in use; pick another path');
      throw error;
    }
    this.listenWatch = watchReadable(this.listenFd, () => this.accept());
  }

  /** Resolves once no front-end is connected (immediately if none is). */
  idle(): Promise<void> {
    if (this.session === undefined) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Disconnects the front-end, stops listening and removes the socket file. */
  close(): void {
    this.session?.close();
    this.listenWatch?.cancel();
    this.listenWatch = undefined;
    if (this.listenFd >= 0) {
      closeQuietly(this.listenFd);
      this.listenFd = -1;
      try {
        unlinkSync(this.options.socketPath);
      } catch {
        // Already removed by someone else: nothing to clean up.
      }
    }
  }

  private accept(): void {
    for (;;) {
      let fd: number;
      try {
        fd = acceptUnix(this.listenFd);
      } catch (error) {
        // Out of descriptors, or the peer vanished while queued: the listener stays up for the next one.
        this.log(`accept failed: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
      if (fd < 0) return;
      if (this.session !== undefined) {
        this.log('refused a second front-end: one is already connected');
        closeQuietly(fd);
        continue;
      }
      this.connections++;
      this.log('front-end connected');
      this.session = new Session(fd, this.device, { log: this.log, trace: this.options.trace, maxMemSlots: this.options.maxMemSlots ?? 32 }, () => {
        this.session = undefined;
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }
}

/** A socket file nobody accepts on any more: connecting is refused. */
function isStale(path: string): boolean {
  try {
    closeQuietly(connectUnix(path));
    return false;
  } catch (error) {
    return error instanceof SysError && error.errno === Errno.ECONNREFUSED;
  }
}
