/**
 * A small virtio-blk guest driver for the tests: the initialisation sequence
 * over any DriverTransport, and requests laid out in guest memory with any
 * descriptor framing, through the ring drivers of @virtio-ts/virtqueue/testing.
 */
import { CcwDriverTransport, CoreTransport, legacyPciQueueLayout, type DriverTransport } from '@virtio-ts/driver';
import { CcwTransport, diagnose500 } from '@virtio-ts/transport-ccw';
import { connectMmio } from '@virtio-ts/transport-mmio/testing';
import { connectPci, connectPciLegacy } from '@virtio-ts/transport-pci/testing';
import {
  DeviceStatus,
  RING_EVENT_FLAGS_DESC,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  hasFeature,
  featureBit,
  splitRingSizes,
  GuestMemory,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_RESET,
  type QueueConfig,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing, type GuestBuffer } from '@virtio-ts/virtqueue/testing';
import { BlkConfigOffset, MemoryBackend, VIRTIO_BLK_F_MQ, VirtioBlk, type VirtioBlkOptions } from '../src/index.js';
import { GatedBackend } from './gated-backend.js';
import { patterned } from './setup.js';

/** The first page is left to the platform (CCW channel programs); the guest's rings start here. */
const RINGS_START = 0x1000;

/** Options for {@link BlkGuest.start}. */
export interface GuestOptions {
  /** Use the packed layout (must be offered). */
  readonly packed?: boolean;
  /**
   * Features to accept, masked with what the device offers. Defaults, like
   * Linux 6.1, to all offered except IN_ORDER, and RING_PACKED unless `packed`.
   */
  readonly accept?: bigint;
  /** Queue size; defaults to the device maximum. */
  readonly queueSize?: number;
  /**
   * A legacy (pre-1.0) driver on a transitional transport: no FEATURES_OK,
   * split rings of the maximum size in the legacy layout (spec 2.7.2).
   */
  readonly legacy?: boolean;
  /** Runs just before DRIVER_OK (e.g. to write the configuration space). */
  readonly beforeDriverOk?: (transport: DriverTransport) => void;
  /** Where buffers go: [start, end) of guest memory. Rings go below `start`, above the first page. */
  readonly bufferWindow?: readonly [number, number];
}

/** One request as the guest builds it. */
export interface GuestRequest {
  /** VIRTIO_BLK_T_*. */
  readonly type: number;
  /** Sector (64-bit). */
  readonly sector?: number | bigint;
  /** Replaces the whole 16-byte header (e.g. a short, malformed one). */
  readonly header?: Uint8Array;
  /** Device-readable payload after the header. */
  readonly out?: Uint8Array;
  /** Device-writable data bytes before the status. */
  readonly inLen?: number;
  /** Size of the status part (1 normally; 0 for a request with nowhere to put a status). */
  readonly statusLen?: number;
  /** Cut the readable part at these offsets into separate descriptors (spec 2.7.4: any framing). */
  readonly readableCuts?: readonly number[];
  /** Cut the writable part at these offsets. */
  readonly writableCuts?: readonly number[];
  /** Put the chain in an indirect table. */
  readonly indirect?: boolean;
}

/** A used request as the guest sees it. */
export interface GuestCompletion {
  /** The byte at the end of the writable part, or undefined if there was none. */
  readonly status: number | undefined;
  /** The used length the device reported. */
  readonly len: number;
  /** The writable data bytes (without the status). */
  readonly data: Uint8Array;
}

/** Bytes the writable part is filled with before submission, to tell written from untouched. */
export const CANARY = 0xa5;

const EMPTY = new Uint8Array(0);

interface Pending {
  readonly writable: GuestBuffer[];
  readonly inLen: number;
  readonly resolve: (c: GuestCompletion) => void;
}

type Ring = SplitRingDriver | PackedRingDriver;

/** A virtio-blk driver for tests. */
export class BlkGuest {
  readonly transport: DriverTransport;
  /** Negotiated features. */
  readonly features: bigint;
  /** Interrupts seen, by cause. */
  readonly interrupts = { queue: 0, config: 0 };
  private readonly rings: Ring[] = [];
  private readonly pending: Map<number, Pending>[] = [];
  private readonly taken: number[] = [];
  private readonly allocator: GuestAllocator;
  private readonly eventIdx: boolean;
  private outstanding = 0;

  private constructor(transport: DriverTransport, features: bigint, window: readonly [number, number]) {
    this.transport = transport;
    this.features = features;
    this.eventIdx = hasFeature(features, VIRTIO_F_EVENT_IDX);
    this.allocator = new GuestAllocator(window[0], window[1], { seed: 11, maxGap: 64 });
  }

  /** Runs the initialisation sequence (spec 3.1.1) and sets up every queue the device will use. */
  static start(transport: DriverTransport, options: GuestOptions = {}): BlkGuest {
    const memory = transport.memory;
    const window = options.bufferWindow ?? [1 << 20, memory.size];
    transport.reset();
    transport.setStatus(DeviceStatus.ACKNOWLEDGE);
    transport.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    const offered = transport.readDeviceFeatures();
    const packedBit = featureBit(VIRTIO_F_RING_PACKED);
    const wanted = options.accept ?? (options.packed === true ? offered : offered & ~packedBit) & ~featureBit(VIRTIO_F_IN_ORDER);
    const features = offered & wanted;
    transport.writeDriverFeatures(features);
    const legacy = options.legacy === true;
    const negotiated = legacy ? 0 : DeviceStatus.FEATURES_OK;
    if (!legacy) {
      transport.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
      if ((transport.getStatus() & DeviceStatus.FEATURES_OK) === 0) throw new Error('device refused FEATURES_OK');
    }
    const guest = new BlkGuest(transport, features, window);
    const queues = hasFeature(features, VIRTIO_BLK_F_MQ) ? new DataView(transport.readConfig(BlkConfigOffset.numQueues, 2).buffer).getUint16(0, true) : 1;
    const ringAlloc = new GuestAllocator(RINGS_START, window[0], { seed: 5, maxGap: 0 });
    const packed = hasFeature(features, VIRTIO_F_RING_PACKED);
    for (let q = 0; q < queues; q++) {
      const max = transport.queueMaxSize(q);
      const size = legacy ? max : Math.min(options.queueSize ?? max, max);
      const config = legacy ? placeLegacyRing(ringAlloc, size) : packed ? placePackedRing(ringAlloc, size) : placeSplitRing(ringAlloc, size);
      const ring = packed ? new PackedRingDriver(memory, config, { eventIdx: guest.eventIdx }) : new SplitRingDriver(memory, config, { eventIdx: guest.eventIdx });
      if (!transport.setupQueue(q, config)) throw new Error(`device refused queue ${q}`);
      guest.rings.push(ring);
      guest.pending.push(new Map());
      guest.taken.push(0);
      guest.armInterrupts(q);
    }
    transport.onInterrupt((cause) => {
      if (cause.kind === 'config') {
        guest.interrupts.config++;
        return;
      }
      guest.interrupts.queue++;
      if (cause.index !== undefined) guest.reap(cause.index);
      else for (let q = 0; q < guest.rings.length; q++) guest.reap(q);
    });
    options.beforeDriverOk?.(transport);
    transport.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | negotiated | DeviceStatus.DRIVER_OK);
    return guest;
  }

  /** Number of queues set up. */
  get queueCount(): number {
    return this.rings.length;
  }

  /** Reads `length` bytes of the device configuration at `offset` as a DataView. */
  config(offset: number, length: number): DataView {
    const bytes = this.transport.readConfig(offset, length);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Lays out `request`, makes it available on `queue` and kicks if the device asks for it. */
  submit(request: GuestRequest, queue = 0): Promise<GuestCompletion> {
    const promise = this.add(request, queue);
    this.kick(queue);
    return promise;
  }

  /** Lays out `request` and makes it available without kicking (to batch several). */
  add(request: GuestRequest, queue = 0): Promise<GuestCompletion> {
    const ring = this.rings[queue];
    if (ring === undefined) throw new Error(`queue ${queue} is not set up`);
    const memory = this.transport.memory;
    if (this.outstanding === 0) this.allocator.reset();
    const readable = concat(request.header ?? header(request.type, request.sector ?? 0), request.out ?? new Uint8Array(0));
    const inLen = request.inLen ?? 0;
    const writableLen = inLen + (request.statusLen ?? 1);
    const buffers: GuestBuffer[] = [];
    for (const [from, to] of pieces(readable.length, request.readableCuts)) {
      const addr = this.allocator.alloc(to - from, 8);
      memory.write(addr, readable.subarray(from, to));
      buffers.push({ addr, len: to - from, writable: false });
    }
    const writable: GuestBuffer[] = [];
    for (const [from, to] of pieces(writableLen, request.writableCuts)) {
      const addr = this.allocator.alloc(to - from, 8);
      memory.fill(addr, to - from, CANARY);
      writable.push({ addr, len: to - from, writable: true });
    }
    buffers.push(...writable);
    const indirect = request.indirect === true && hasFeature(this.features, VIRTIO_F_INDIRECT_DESC);
    const id = ring.add(buffers, indirect ? { indirectTable: this.allocator.alloc(16 * buffers.length, 16) } : {});
    this.outstanding++;
    return new Promise((resolve) => (this.pending[queue] as Map<number, Pending>).set(id, { writable, inLen, resolve }));
  }

  /**
   * Makes raw buffers available as one chain (which may be malformed on
   * purpose) and kicks; the completion's `data` is empty and `status` unread.
   */
  submitBuffers(buffers: readonly GuestBuffer[], queue = 0): Promise<GuestCompletion> {
    const ring = this.rings[queue] as Ring;
    const id = ring.add(buffers);
    this.outstanding++;
    const promise = new Promise<GuestCompletion>((resolve) =>
      (this.pending[queue] as Map<number, Pending>).set(id, { writable: [], inLen: 0, resolve }),
    );
    this.kick(queue);
    return promise;
  }

  /** Publishes added requests and notifies the device if it wants a notification. */
  kick(queue = 0): void {
    const ring = this.rings[queue] as Ring;
    ring.publish();
    if (ring.kickNeeded()) this.transport.notify(queue);
  }

  /** Takes every used element of `queue`, then asks for the next interrupt (spec 2.7.10 / 2.8.10 with EVENT_IDX). */
  reap(queue: number): void {
    const ring = this.rings[queue];
    if (ring === undefined) return;
    const memory = this.transport.memory;
    for (let used = ring.takeUsed(); used !== null; used = ring.takeUsed()) {
      this.taken[queue] = ((this.taken[queue] as number) + 1) & 0xffff;
      const p = (this.pending[queue] as Map<number, Pending>).get(used.id);
      if (p === undefined) throw new Error(`device used unknown id ${used.id} on queue ${queue}`);
      (this.pending[queue] as Map<number, Pending>).delete(used.id);
      this.outstanding--;
      if (p.writable.length === 0) {
        p.resolve({ status: undefined, len: used.len, data: EMPTY });
        continue;
      }
      const bytes = new Uint8Array(p.writable.reduce((n, b) => n + b.len, 0));
      let at = 0;
      for (const b of p.writable) {
        memory.read(b.addr, bytes.subarray(at, at + b.len));
        at += b.len;
      }
      p.resolve({ status: bytes.length > p.inLen ? bytes[bytes.length - 1] : undefined, len: used.len, data: bytes.slice(0, p.inLen) });
    }
    this.armInterrupts(queue);
  }

  private armInterrupts(queue: number): void {
    if (!this.eventIdx) return;
    const ring = this.rings[queue] as Ring;
    if (ring instanceof SplitRingDriver) ring.setUsedEvent(this.taken[queue] as number);
    else ring.setDriverEvent(RING_EVENT_FLAGS_DESC, ring.usedOffWrap);
  }
}

/** A split ring in the legacy layout: page-aligned, the used ring on the next page boundary (spec 2.7.2). */
function placeLegacyRing(allocator: GuestAllocator, size: number): QueueConfig {
  const probe = legacyPciQueueLayout(0, size);
  const descAddr = allocator.alloc(probe.deviceAddr + splitRingSizes(size).used, 4096);
  return legacyPciQueueLayout(descAddr, size);
}

/** struct virtio_blk_req's header: le32 type, le32 reserved, le64 sector. */
export function header(type: number, sector: number | bigint, reserved = 0): Uint8Array {
  const bytes = new Uint8Array(16);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, type >>> 0, true);
  v.setUint32(4, reserved >>> 0, true);
  v.setBigUint64(8, BigInt(sector), true);
  return bytes;
}

/** A list of struct virtio_blk_discard_write_zeroes. */
export function segments(list: readonly { sector: number | bigint; sectors: number; flags?: number }[]): Uint8Array {
  const bytes = new Uint8Array(16 * list.length);
  const v = new DataView(bytes.buffer);
  list.forEach((s, i) => {
    v.setBigUint64(16 * i, BigInt(s.sector), true);
    v.setUint32(16 * i + 8, s.sectors >>> 0, true);
    v.setUint32(16 * i + 12, (s.flags ?? 0) >>> 0, true);
  });
  return bytes;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Splits [0, length) at the given cut points (out-of-range and duplicate cuts ignored); empty parts are dropped. */
function pieces(length: number, cuts: readonly number[] = []): [number, number][] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < length))].sort((a, b) => a - b);
  const out: [number, number][] = [];
  let from = 0;
  for (const p of [...points, length]) {
    if (p > from) out.push([from, p]);
    from = p;
  }
  return out;
}

/** The transports the tests run over ('pci-legacy': a transitional function driven by a legacy driver). */
export type TransportKind = 'core' | 'mmio' | 'pci' | 'ccw' | 'pci-legacy';

/** Every transport kind: the status machine directly, and each real transport. */
export const TRANSPORTS: readonly TransportKind[] = ['core', 'mmio', 'pci', 'ccw'];

/** Puts `device` behind a transport of `kind` and returns the guest's side of it. */
export function connect(kind: TransportKind, memory: GuestMemory, device: VirtioDevice): DriverTransport {
  switch (kind) {
    case 'core':
      return new CoreTransport(memory, device, { transportFeatures: featureBit(VIRTIO_F_RING_RESET) | featureBit(VIRTIO_F_NOTIFICATION_DATA) });
    case 'mmio':
      return connectMmio(device, memory).driver;
    case 'pci':
      return connectPci(device, memory).driver;
    case 'pci-legacy':
      return connectPciLegacy(device, memory).driver;
    case 'ccw': {
      const link: { driver?: CcwDriverTransport } = {};
      const subchannelId = 0x00010042;
      const transport = new CcwTransport({
        device,
        memory,
        subchannelId,
        channelSubsystem: { ioInterrupt: () => link.driver?.ioInterrupt(), adapterInterrupt: (isc: number) => link.driver?.adapterInterrupt(isc) },
      });
      transport.setEnabled(true);
      link.driver = new CcwDriverTransport(memory, transport, {
        allocator: new GuestAllocator(0x100, 0x1000, { seed: 3, maxGap: 16 }),
        subchannelId,
        hypercall: (registers) => diagnose500(registers, (sid) => (sid === subchannelId ? transport : undefined)),
      });
      return link.driver;
    }
  }
}

/** A device on a transport with a guest driving it. */
export interface Rig {
  readonly blk: VirtioBlk;
  readonly backend: MemoryBackend;
  readonly gate: GatedBackend;
  readonly transport: DriverTransport;
  readonly guest: BlkGuest;
}

/** Options for {@link rig}. */
export interface RigOptions {
  readonly sectors?: number;
  readonly device?: Partial<VirtioBlkOptions>;
  readonly guest?: GuestOptions;
  readonly transport?: TransportKind;
  readonly image?: MemoryBackend;
}

/** A memory-backed disk behind a gate, with a guest driving it. */
export function rig(options: RigOptions = {}): Rig {
  const backend = options.image ?? new MemoryBackend(patterned((options.sectors ?? 64) * 512));
  const gate = new GatedBackend(backend);
  const blk = new VirtioBlk({ ...options.device, backend: gate });
  const transport = connect(options.transport ?? 'core', GuestMemory.create(8 << 20), blk);
  const guest = BlkGuest.start(transport, options.guest);
  return { blk, backend, gate, transport, guest };
}
