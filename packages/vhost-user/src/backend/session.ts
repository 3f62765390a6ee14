import {
  DEVICE_SPECIFIC_FEATURES,
  DeviceStatus,
  QUEUE_FEATURES,
  VIRTIO_F_RING_PACKED,
  createVirtqueue,
  featureBit,
  hasFeature,
  type ActivationContext,
  type QueuePosition,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import {
  BackendRequest,
  CONFIG_FLAG_MIGRATION,
  HeaderFlags,
  ProtocolFeature,
  Request,
  VHOST_F_LOG_ALL,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VRING_INDEX_MASK,
  VRING_NOFD_MASK,
  requestName,
} from '../protocol/constants.js';
import {
  ProtocolError,
  decodeConfig,
  decodeMemoryTable,
  decodeSingleRegion,
  decodeU64,
  decodeVringAddr,
  decodeVringState,
  encodeMessage,
  u64Payload,
  vringStatePayload,
  type Message,
  type VringAddr,
} from '../protocol/message.js';
import { MessageReader } from '../protocol/reader.js';
import { drainEventFd, signalEventFd } from '../sys/eventfd.js';
import { Sys, closeQuietly } from '../sys/libc.js';
import { watchReadable, type Watch } from '../sys/watch.js';
import { UnixChannel } from '../sys/unix-socket.js';
import { GatedQueue } from './gated-queue.js';
import { MemoryTable } from './memory-table.js';

/** How long GET_VRING_BASE waits for requests in flight to complete before it stops the ring anyway. */
const DRAIN_TIMEOUT_MS = 10_000;

/** Settings shared by every session of a back-end. */
export interface SessionOptions {
  /** Diagnostics: protocol errors, refused requests, guest errors. */
  readonly log: (message: string) => void;
  /** Memory slots offered with CONFIGURE_MEM_SLOTS. */
  readonly maxMemSlots: number;
  /** Called with each request's name as it arrives (protocol tracing), if set. */
  readonly trace: ((message: string) => void) | undefined;
}

/** One ring's state as the front-end configured it. */
class Vring {
  size = 0;
  addr: VringAddr | undefined;
  /** SET_VRING_BASE's number: where the ring resumes. */
  base = 0;
  kickFd = -1;
  kickWatch: Watch | undefined;
  callFd = -1;
  errFd = -1;
  enabled = false;
  /** Set while the ring is started (from SET_VRING_KICK to GET_VRING_BASE). */
  queue: GatedQueue | undefined;
}

type Activation = 'inactive' | 'activating' | 'active';

/**
 * The back-end's side of one front-end connection: answers the front-end's
 * requests, maps its memory, runs the rings it starts, and activates the device
 * once every started ring is enabled (QEMU configures all rings, then enables
 * them). A front-end that disconnects leaves nothing behind: the device is
 * reset, memory released, descriptors closed.
 */
export class Session {
  /** The negotiated virtio features (without the vhost-only bits). */
  features = 0n;
  /** The negotiated protocol features. */
  protocolFeatures = 0n;
  private readonly device: VirtioDevice;
  private readonly channel: UnixChannel;
  private readonly options: SessionOptions;
  private readonly onClosed: () => void;
  private readonly reader = new MessageReader();
  private readonly memory = new MemoryTable();
  private readonly rings: Vring[];
  private readonly offeredFeatures: bigint;
  private readonly offeredProtocolFeatures: bigint;
  /** SET_FEATURES's value, vhost-only bits included. */
  private acked = 0n;
  /** Rings whose queue the device was given. */
  private readonly handedOver = new Set<number>();
  private socketWatch: Watch | undefined;
  private backendChannel: UnixChannel | undefined;
  private activation: Activation = 'inactive';
  private abort: AbortController | undefined;
  private busy = false;
  private closed = false;
  private status = 0;

  /** Starts serving `fd`, an accepted connection. `onClosed` runs once the session has been torn down. */
  constructor(fd: number, device: VirtioDevice, options: SessionOptions, onClosed: () => void) {
    this.channel = new UnixChannel(fd);
    this.device = device;
    this.options = options;
    this.onClosed = onClosed;
    this.rings = device.queueMaxSizes.map(() => new Vring());
    this.offeredFeatures = (device.deviceFeatures & (DEVICE_SPECIFIC_FEATURES | QUEUE_FEATURES)) | featureBit(VHOST_USER_F_PROTOCOL_FEATURES);
    let protocol =
      featureBit(ProtocolFeature.MQ) |
      featureBit(ProtocolFeature.REPLY_ACK) |
      featureBit(ProtocolFeature.BACKEND_REQ) |
      featureBit(ProtocolFeature.RESET_DEVICE) |
      featureBit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
      featureBit(ProtocolFeature.STATUS);
    if (device.configSize > 0) protocol |= featureBit(ProtocolFeature.CONFIG);
    this.offeredProtocolFeatures = protocol;
    this.socketWatch = watchReadable(fd, () => this.readable());
  }

  /** The device changed its configuration space: tell the front-end if it listens (BACKEND_REQ + CONFIG). */
  configChanged(): void {
    if (this.backendChannel === undefined || !this.hasProtocolFeature(ProtocolFeature.CONFIG)) {
      this.options.log('config change not forwarded: the front-end did not negotiate a back-end channel with CONFIG');
      return;
    }
    try {
      this.backendChannel.send(encodeMessage(BackendRequest.CONFIG_CHANGE_MSG, 0));
    } catch (error) {
      this.options.log(`config change notification failed: ${describe(error)}`);
    }
  }

  /**
   * The device cannot go on (a corrupt ring, a failed activation). The
   * front-end owns the status register, so the back-end stops the rings,
   * reports DEVICE_NEEDS_RESET through GET_STATUS and signals every ring's error
   * eventfd, which QEMU reports.
   */
  needsReset(reason: string): void {
    this.options.log(`DEVICE_NEEDS_RESET: ${reason}`);
    this.status |= DeviceStatus.DEVICE_NEEDS_RESET;
    for (const ring of this.rings) {
      if (ring.queue !== undefined) ring.queue.closed = true;
      if (ring.errFd >= 0) signalEventFd(ring.errFd);
    }
  }

  /** Ends the session: the device is reset and everything the front-end shared is released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socketWatch?.cancel();
    this.reader.discard();
    this.resetDevice();
    for (const ring of this.rings) {
      closeQuietly(ring.callFd);
      closeQuietly(ring.errFd);
      ring.callFd = -1;
      ring.errFd = -1;
    }
    this.backendChannel?.close();
    this.memory.clear();
    this.channel.close();
    this.onClosed();
  }

  private readable(): void {
    try {
      while (!this.busy && !this.closed) {
        const message = this.reader.next(this.channel);
        if (message === undefined) return;
        if (message === null) {
          this.options.log('front-end disconnected');
          this.close();
          return;
        }
        this.handle(message);
      }
    } catch (error) {
      this.options.log(`closing the connection: ${describe(error)}`);
      this.close();
    }
  }

  private handle(message: Message): void {
    this.options.trace?.(`${requestName.get(message.request) ?? message.request} flags=0x${message.flags.toString(16)} size=${message.payload.byteLength} fds=${message.fds.length}`);
    let result: Uint8Array | undefined | Promise<Uint8Array>;
    let failed = false;
    try {
      result = this.dispatch(message);
    } catch (error) {
      failed = true;
      this.options.log(`${requestName.get(message.request) ?? `request ${message.request}`} refused: ${describe(error)}`);
      // Requests that always reply still owe one; an empty payload is how vhost-user says "error".
      if (alwaysReplies(message.request)) result = new Uint8Array(0);
    } finally {
      for (const fd of message.fds) closeQuietly(fd);
    }
    if (result instanceof Promise) {
      this.busy = true;
      this.socketWatch?.cancel();
      this.socketWatch = undefined;
      result
        .then((payload) => {
          if (this.closed) return;
          this.reply(message.request, payload);
          this.busy = false;
          this.socketWatch = watchReadable(this.channel.fd, () => this.readable());
        })
        .catch((error: unknown) => {
          this.options.log(`closing the connection: ${describe(error)}`);
          this.close();
        });
      return;
    }
    // Checked after the request so that SET_PROTOCOL_FEATURES negotiating REPLY_ACK is itself acknowledged.
    const needReply = (message.flags & HeaderFlags.NEED_REPLY) !== 0 && this.hasProtocolFeature(ProtocolFeature.REPLY_ACK);
    if (result !== undefined) this.reply(message.request, result);
    else if (needReply) this.reply(message.request, u64Payload(failed ? 1n : 0n));
  }

  private reply(request: number, payload: Uint8Array): void {
    this.channel.send(encodeMessage(request, HeaderFlags.REPLY, payload));
  }

  /** Handles one request; returns the explicit reply payload, if the request has one. */
  private dispatch(message: Message): Uint8Array | undefined | Promise<Uint8Array> {
    const { payload } = message;
    switch (message.request) {
      case Request.GET_FEATURES:
        return u64Payload(this.offeredFeatures);
      case Request.SET_FEATURES:
        this.setFeatures(decodeU64(payload));
        return undefined;
      case Request.GET_PROTOCOL_FEATURES:
        return u64Payload(this.offeredProtocolFeatures);
      case Request.SET_PROTOCOL_FEATURES: {
        const wanted = decodeU64(payload);
        this.protocolFeatures = wanted & this.offeredProtocolFeatures;
        if (wanted !== this.protocolFeatures) throw new ProtocolError(`protocol features 0x${(wanted & ~this.offeredProtocolFeatures).toString(16)} were not offered`);
        return undefined;
      }
      case Request.SET_OWNER:
        return undefined;
      case Request.RESET_OWNER:
      case Request.RESET_DEVICE:
        this.resetDevice();
        this.memory.clear();
        return undefined;
      case Request.GET_QUEUE_NUM:
        return u64Payload(BigInt(this.rings.length));
      case Request.GET_MAX_MEM_SLOTS:
        return u64Payload(BigInt(this.options.maxMemSlots));
      case Request.SET_MEM_TABLE:
        this.memory.replace(decodeMemoryTable(payload), message.fds.splice(0));
        this.releaseIfIdle();
        return undefined;
      case Request.ADD_MEM_REG:
        this.memory.add(decodeSingleRegion(payload), message.fds.splice(0), this.options.maxMemSlots);
        return undefined;
      case Request.REM_MEM_REG:
        this.memory.remove(decodeSingleRegion(payload));
        this.releaseIfIdle();
        return undefined;
      case Request.SET_VRING_NUM: {
        const { index, num } = decodeVringState(payload);
        const ring = this.stoppedRing(index);
        const max = this.device.queueMaxSizes[index] as number;
        if (num < 1 || num > max) throw new ProtocolError(`ring ${index} size ${num} is not in 1..${max}`);
        ring.size = num;
        return undefined;
      }
      case Request.SET_VRING_ADDR: {
        const addr = decodeVringAddr(payload);
        this.stoppedRing(addr.index).addr = addr;
        return undefined;
      }
      case Request.SET_VRING_BASE: {
        const { index, num } = decodeVringState(payload);
        this.stoppedRing(index).base = num;
        return undefined;
      }
      case Request.GET_VRING_BASE: {
        const { index } = decodeVringState(payload);
        return this.stopRing(index);
      }
      case Request.SET_VRING_KICK:
        this.setKick(decodeU64(payload), message.fds);
        return undefined;
      case Request.SET_VRING_CALL: {
        const { ring, fd } = this.takeRingFd(decodeU64(payload), message.fds);
        closeQuietly(ring.callFd);
        ring.callFd = fd;
        return undefined;
      }
      case Request.SET_VRING_ERR: {
        const { ring, fd } = this.takeRingFd(decodeU64(payload), message.fds);
        closeQuietly(ring.errFd);
        ring.errFd = fd;
        return undefined;
      }
      case Request.SET_VRING_ENABLE: {
        const { index, num } = decodeVringState(payload);
        if (!this.hasFeature(VHOST_USER_F_PROTOCOL_FEATURES)) throw new ProtocolError('SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES');
        this.ring(index).enabled = num !== 0;
        this.reconcile();
        return undefined;
      }
      case Request.GET_CONFIG:
        return this.getConfig(payload);
      case Request.SET_CONFIG:
        this.setConfig(payload);
        return undefined;
      case Request.SET_BACKEND_REQ_FD: {
        if (message.fds.length !== 1) throw new ProtocolError(`SET_BACKEND_REQ_FD carries ${message.fds.length} descriptors, expected 1`);
        this.backendChannel?.close();
        this.backendChannel = new UnixChannel(message.fds.splice(0)[0] as number, 256);
        return undefined;
      }
      case Request.SET_STATUS:
        this.status = Number(decodeU64(payload) & 0xffn) | (this.status & DeviceStatus.DEVICE_NEEDS_RESET);
        return undefined;
      case Request.GET_STATUS:
        return u64Payload(BigInt(this.status));
      default:
        throw new ProtocolError('request not supported by this back-end');
    }
  }

  private setFeatures(value: bigint): void {
    const unoffered = value & ~this.offeredFeatures;
    if (unoffered !== 0n) throw new ProtocolError(`features 0x${unoffered.toString(16)} were not offered`);
    if (this.rings.some((ring) => ring.queue !== undefined) && value !== this.acked) {
      throw new ProtocolError('features cannot change while rings are running');
    }
    const virtio = value & ~(featureBit(VHOST_USER_F_PROTOCOL_FEATURES) | featureBit(VHOST_F_LOG_ALL));
    let accepted = true;
    try {
      accepted = this.device.acceptFeatures?.(virtio) ?? true;
    } catch (error) {
      throw new ProtocolError(`the device failed to check features: ${describe(error)}`);
    }
    if (!accepted) throw new ProtocolError(`the device refused features 0x${virtio.toString(16)}`);
    this.acked = value;
    this.features = virtio;
    // Without protocol features a ring is enabled as soon as it starts; with them, by SET_VRING_ENABLE.
    if (!hasFeature(value, VHOST_USER_F_PROTOCOL_FEATURES)) for (const ring of this.rings) ring.enabled = true;
  }

  private hasFeature(bit: number): boolean {
    return hasFeature(this.acked, bit);
  }

  private hasProtocolFeature(bit: number): boolean {
    return hasFeature(this.protocolFeatures, bit);
  }

  private ring(index: number): Vring {
    const ring = this.rings[index];
    if (ring === undefined) throw new ProtocolError(`ring ${index} does not exist; the device has ${this.rings.length}`);
    return ring;
  }

  private stoppedRing(index: number): Vring {
    const ring = this.ring(index);
    if (ring.queue !== undefined) throw new ProtocolError(`ring ${index} is running; stop it with GET_VRING_BASE first`);
    return ring;
  }

  private takeRingFd(value: bigint, fds: number[]): { ring: Vring; fd: number } {
    const index = Number(value & BigInt(VRING_INDEX_MASK));
    const ring = this.ring(index);
    const noFd = (value & BigInt(VRING_NOFD_MASK)) !== 0n;
    if (noFd) return { ring, fd: -1 };
    if (fds.length !== 1) throw new ProtocolError(`ring ${index}: expected one descriptor, got ${fds.length}`);
    return { ring, fd: fds.splice(0)[0] as number };
  }

  /** SET_VRING_KICK starts the ring (vhost-user.rst "Ring states"). */
  private setKick(value: bigint, fds: number[]): void {
    const index = Number(value & BigInt(VRING_INDEX_MASK));
    const ring = this.stoppedRing(index);
    const { fd } = this.takeRingFd(value, fds);
    if (fd < 0) throw new ProtocolError(`ring ${index}: polling mode (no kick descriptor) is not supported`);
    ring.kickWatch?.cancel();
    closeQuietly(ring.kickFd);
    ring.kickFd = fd;
    ring.kickWatch = watchReadable(fd, (revents) => this.kicked(index, revents));
    this.startRing(index, ring);
    this.reconcile();
  }

  private startRing(index: number, ring: Vring): void {
    const { addr, size } = ring;
    if (addr === undefined || size === 0) throw new ProtocolError(`ring ${index} started before its size and addresses were set`);
    const packed = hasFeature(this.features, VIRTIO_F_RING_PACKED);
    const translate = (userAddress: number, length: number, what: string): number => {
      const gpa = this.memory.translate(userAddress, length);
      if (gpa === undefined) throw new ProtocolError(`ring ${index}: ${what} at user address 0x${userAddress.toString(16)} is not in shared memory`);
      return gpa;
    };
    const config = {
      size,
      descAddr: translate(addr.desc, 16 * size, 'descriptor area'),
      driverAddr: translate(addr.avail, packed ? 4 : 6 + 2 * size, 'driver area'),
      deviceAddr: translate(addr.used, packed ? 4 : 6 + 8 * size, 'device area'),
    };
    const queue = createVirtqueue(this.memory.memory, config, {
      index,
      features: this.features,
      hooks: { interrupt: () => this.call(ring), corrupt: (reason) => this.needsReset(reason) },
      start: packed ? packedPosition(ring.base) : this.splitPosition(ring.base, config.deviceAddr),
    });
    ring.queue = new GatedQueue(queue);
  }

  /** Split rings resume at SET_VRING_BASE's avail index and at the used index the ring itself holds. */
  private splitPosition(base: number, usedAddr: number): QueuePosition {
    const usedIndex = this.memory.memory.getU16(usedAddr + 2);
    return { availIndex: base & 0xffff, availWrapCounter: false, usedIndex, usedWrapCounter: false };
  }

  private call(ring: Vring): void {
    if (ring.callFd >= 0) signalEventFd(ring.callFd);
  }

  private kicked(index: number, revents: number): void {
    const ring = this.rings[index] as Vring;
    if ((revents & Sys.POLLIN) === 0) {
      // The front-end closed its end or the descriptor is bad: stop watching rather than spin.
      ring.kickWatch?.cancel();
      ring.kickWatch = undefined;
      return;
    }
    drainEventFd(ring.kickFd);
    if (this.activation === 'active' && ring.enabled && ring.queue !== undefined) this.notify(index);
  }

  private notify(index: number): void {
    try {
      this.device.notify(index);
    } catch (error) {
      this.needsReset(`device notify failed: ${describe(error)}`);
    }
  }

  /** Activates the device once every started ring is enabled; hands later rings over as they start. */
  private reconcile(): void {
    const started = this.rings.filter((ring) => ring.queue !== undefined);
    if (this.activation === 'inactive') {
      if (started.length === 0 || started.some((ring) => !ring.enabled)) return;
      this.activate();
      return;
    }
    for (let index = 0; index < this.rings.length; index++) {
      const ring = this.rings[index] as Vring;
      if (ring.queue === undefined || !ring.enabled || this.handedOver.has(index)) continue;
      this.handedOver.add(index);
      if (this.device.enableQueue === undefined) {
        this.options.log(`ring ${index} started after the device was activated, and the device cannot take queues one by one`);
        continue;
      }
      try {
        this.device.enableQueue(index, ring.queue);
      } catch (error) {
        this.needsReset(`device enableQueue failed: ${describe(error)}`);
      }
      this.notify(index);
    }
  }

  private activate(): void {
    const queues = new Map<number, GatedQueue>();
    this.rings.forEach((ring, index) => {
      if (ring.queue !== undefined) queues.set(index, ring.queue);
    });
    for (const index of queues.keys()) this.handedOver.add(index);
    const abort = new AbortController();
    this.abort = abort;
    this.activation = 'activating';
    const context: ActivationContext = {
      memory: this.memory.memory,
      features: this.features,
      queues,
      signal: abort.signal,
      sharedMemory: new Map(),
      configChanged: () => this.configChanged(),
      needsReset: (reason) => this.needsReset(reason),
    };
    const done = (): void => {
      if (abort.signal.aborted) return;
      this.activation = 'active';
      // Buffers may have been made available before activation, or before a reconnection.
      for (const index of queues.keys()) this.notify(index);
    };
    const fail = (error: unknown): void => {
      if (abort.signal.aborted) return;
      this.activation = 'inactive';
      this.needsReset(`activation failed: ${describe(error)}`);
    };
    try {
      const result = this.device.activate(context);
      if (result instanceof Promise) result.then(done, fail);
      else done();
    } catch (error) {
      fail(error);
    }
  }

  /** GET_VRING_BASE: stops the ring once its requests in flight completed, and reports where it stopped. */
  private stopRing(index: number): Uint8Array | Promise<Uint8Array> {
    const ring = this.ring(index);
    const queue = ring.queue;
    if (queue === undefined) return vringStatePayload(index, ring.base);
    queue.closed = true;
    const finish = (): Uint8Array => {
      if (queue.inFlight > 0) this.options.log(`ring ${index}: stopping with ${queue.inFlight} requests still in flight`);
      const position = queue.position();
      queue.detach();
      ring.queue = undefined;
      this.handedOver.delete(index);
      ring.kickWatch?.cancel();
      ring.kickWatch = undefined;
      closeQuietly(ring.kickFd);
      ring.kickFd = -1;
      ring.base = queue.packed ? encodePackedPosition(position) : position.availIndex;
      if (this.activation !== 'inactive') {
        if (this.rings.every((r) => r.queue === undefined)) this.deactivate();
        else if (this.device.resetQueue !== undefined) this.guard(() => this.device.resetQueue?.(index), 'resetQueue');
      }
      this.releaseIfIdle();
      return vringStatePayload(index, ring.base);
    };
    if (queue.inFlight === 0) return finish();
    return new Promise((resolve) => {
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      const check = (): void => {
        if (queue.inFlight === 0 || Date.now() >= deadline || this.closed) resolve(finish());
        else setTimeout(check, 1);
      };
      check();
    });
  }

  private deactivate(): void {
    this.abort?.abort();
    this.abort = undefined;
    this.activation = 'inactive';
    this.handedOver.clear();
    this.guard(() => this.device.reset(), 'reset');
  }

  /** Stops every ring at once and resets the device (RESET_DEVICE, disconnection). */
  private resetDevice(): void {
    for (const ring of this.rings) {
      ring.queue?.detach();
      ring.queue = undefined;
      ring.kickWatch?.cancel();
      ring.kickWatch = undefined;
      closeQuietly(ring.kickFd);
      ring.kickFd = -1;
      ring.size = 0;
      ring.addr = undefined;
      ring.base = 0;
      ring.enabled = false;
    }
    if (this.activation !== 'inactive') this.deactivate();
    this.acked = 0n;
    this.features = 0n;
    this.status = 0;
  }

  /** Memory dropped from the table is released once no ring runs over it. */
  private releaseIfIdle(): void {
    if (this.rings.every((ring) => ring.queue === undefined)) this.memory.releaseRetired();
  }

  private getConfig(payload: DataView): Uint8Array {
    const access = decodeConfig(payload);
    const reply = new Uint8Array(12 + access.size);
    reply.set(new Uint8Array(payload.buffer, payload.byteOffset, 12));
    // Bytes past the device's configuration space read as zero.
    const inside = Math.max(0, Math.min(access.offset + access.size, this.device.configSize) - access.offset);
    if (inside > 0 && !this.guard(() => this.device.readConfig(access.offset, reply.subarray(12, 12 + inside)), 'readConfig')) {
      throw new ProtocolError('the device failed to read its configuration');
    }
    return reply;
  }

  private setConfig(payload: DataView): void {
    const access = decodeConfig(payload);
    if (access.offset + access.size > this.device.configSize) {
      throw new ProtocolError(`config write of ${access.size} bytes at ${access.offset} is outside the ${this.device.configSize}-byte config space`);
    }
    if ((access.flags & CONFIG_FLAG_MIGRATION) !== 0) throw new ProtocolError('migration config writes are not supported');
    if (access.size > 0) this.guard(() => this.device.writeConfig(access.offset, access.data), 'writeConfig');
  }

  private guard(call: () => void, what: string): boolean {
    try {
      call();
      return true;
    } catch (error) {
      this.needsReset(`device ${what} failed: ${describe(error)}`);
      return false;
    }
  }
}

/** Requests whose reply is part of the protocol, with or without REPLY_ACK. */
function alwaysReplies(request: number): boolean {
  return (
    request === Request.GET_FEATURES ||
    request === Request.GET_PROTOCOL_FEATURES ||
    request === Request.GET_VRING_BASE ||
    request === Request.GET_QUEUE_NUM ||
    request === Request.GET_CONFIG ||
    request === Request.GET_MAX_MEM_SLOTS ||
    request === Request.GET_STATUS
  );
}

/**
 * Packed rings (vhost-user.rst, SET_VRING_BASE): bits 0-14 the next available
 * slot, bit 15 its wrap counter; QEMU puts the used slot and wrap counter in
 * bits 16-31 the same way. A front-end that leaves the upper half zero is
 * taken to be resuming an idle ring, where both positions agree.
 */
function packedPosition(base: number): QueuePosition {
  const avail = base & 0xffff;
  const used = base >>> 16 === 0 ? avail : base >>> 16;
  return {
    availIndex: avail & 0x7fff,
    availWrapCounter: (avail & 0x8000) !== 0,
    usedIndex: used & 0x7fff,
    usedWrapCounter: (used & 0x8000) !== 0,
  };
}

function encodePackedPosition(position: QueuePosition): number {
  const avail = position.availIndex | (position.availWrapCounter ? 0x8000 : 0);
  const used = position.usedIndex | (position.usedWrapCounter ? 0x8000 : 0);
  return (avail | (used << 16)) >>> 0;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
