/**
 * What the block device tests share: the transports they run over, a disk
 * with @virtio-ts/driver's VirtioDriver initialised on it, and virtio-blk
 * requests (spec 5.2.6) laid out in guest memory with any descriptor framing,
 * their status read back as Linux's virtblk_done reads it.
 */
import { VirtioDriver, coreTransportFactory, type DriverQueue, type InitOptions, type TransportFactory } from '@virtio-ts/driver';
import { ccwTransportFactory } from '@virtio-ts/transport-ccw/testing';
import { mmioTransportFactory } from '@virtio-ts/transport-mmio/testing';
import { pciTransportFactory } from '@virtio-ts/transport-pci/testing';
import { DEVICE_SPECIFIC_FEATURES, GuestMemory, VIRTIO_F_INDIRECT_DESC, hasFeature, type VirtioDevice } from '@virtio-ts/virtqueue';
import type { GuestBuffer, UsedElement } from '@virtio-ts/virtqueue/testing';
import { MemoryBackend, VirtioBlk, type VirtioBlkOptions } from '../src/index.js';
import { GatedBackend } from './gated-backend.js';

/** Every transport: the status machine directly, and each real transport through its package's `./testing` factory. */
export const TRANSPORTS: readonly TransportFactory[] = [coreTransportFactory, mmioTransportFactory(), pciTransportFactory(), ccwTransportFactory({ name: 'ccw' })];

/** A transitional PCI function driven by the legacy (0.9.5) driver. */
export const PCI_LEGACY: TransportFactory = pciTransportFactory({ legacy: true });

/** Every transport as [name, transport], for `describe.each` titles `... over %s`. */
export const NAMED_TRANSPORTS: readonly (readonly [string, TransportFactory])[] = TRANSPORTS.map((t) => [t.name, t] as const);

/** Every transport with each ring layout, as [name, packed, transport] for `describe.each` titles `... over %s (packed=%s)`. */
export const TRANSPORTS_AND_LAYOUTS: readonly (readonly [string, boolean, TransportFactory])[] = TRANSPORTS.flatMap((t) => [false, true].map((packed) => [t.name, packed, t] as const));

/**
 * What the tests' driver negotiates unless told otherwise, as Linux's
 * virtio_blk: every device feature and every ring feature offered but
 * IN_ORDER, with split rings.
 */
const DEFAULT_INIT: InitOptions = { indirect: true, eventIdx: true, notificationData: true, ringReset: true, features: DEVICE_SPECIFIC_FEATURES };

/** A driver bound to `device` behind a transport made by `factory`, in the window the transport leaves it. Not initialised. */
export function connect(factory: TransportFactory, memory: GuestMemory, device: VirtioDevice): VirtioDriver {
  const window = factory.driverWindow?.(memory);
  return new VirtioDriver(factory.create(memory, device), window === undefined ? {} : { window });
}

/** {@link connect}, then the initialisation sequence with {@link DEFAULT_INIT} overridden by `init`. */
export async function start(factory: TransportFactory, memory: GuestMemory, device: VirtioDevice, init: InitOptions = {}): Promise<VirtioDriver> {
  const driver = connect(factory, memory, device);
  await driver.init({ ...DEFAULT_INIT, ...init });
  return driver;
}

/** A device on a transport with a driver driving it. */
export interface Rig {
  readonly blk: VirtioBlk;
  /** The disk image (inside the gate). */
  readonly backend: MemoryBackend;
  /** Controls the timing of backend operations. */
  readonly gate: GatedBackend;
  readonly driver: VirtioDriver;
}

/** Options for {@link rig}. */
export interface RigOptions {
  readonly sectors?: number;
  readonly device?: Partial<VirtioBlkOptions>;
  /** Overrides of the driver's defaults (see {@link DEFAULT_INIT}). */
  readonly init?: InitOptions;
  /** Defaults to the status machine directly. */
  readonly transport?: TransportFactory;
  /** An existing image (default: a patterned one of `sectors` sectors). */
  readonly image?: MemoryBackend;
}

/** A memory-backed disk, patterned so that every sector differs, behind a gate that lets everything through until told otherwise. */
export async function rig(options: RigOptions = {}): Promise<Rig> {
  const backend = options.image ?? new MemoryBackend(patterned((options.sectors ?? 64) * 512));
  const gate = new GatedBackend(backend);
  const blk = new VirtioBlk({ ...options.device, backend: gate });
  const driver = await start(options.transport ?? coreTransportFactory, GuestMemory.create(8 << 20), blk, options.init);
  return { blk, backend, gate, driver };
}

/** Used buffer notifications the driver received, on any queue (MMIO's shared line cannot tell which). */
export function queueInterrupts(driver: VirtioDriver): number {
  return driver.interrupts.total - driver.interrupts.config;
}

/** One request as the guest builds it. */
export interface BlkRequest {
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
  /** Put the chain in an indirect table (when VIRTIO_F_INDIRECT_DESC is negotiated). */
  readonly indirect?: boolean;
}

/** A used request as the guest sees it. */
export interface BlkCompletion {
  /** The byte at the end of the writable part, or undefined if there was none. */
  readonly status: number | undefined;
  /** The used length the device reported. */
  readonly len: number;
  /** The writable data bytes (without the status), whatever the used length says. */
  readonly data: Uint8Array;
}

/** Bytes the writable part is filled with before submission, to tell written from untouched. */
export const CANARY = 0xa5;

/**
 * Lays out `request` in fresh guest buffers, the writable ones filled with
 * {@link CANARY}, and makes it available on queue `index` without a
 * notification (to batch several; see {@link submit}). Resolves once the
 * device used it, with the status read from the last writable byte whatever
 * the used length, as Linux's virtblk_done does.
 */
export function add(driver: VirtioDriver, request: BlkRequest, index = 0): Promise<BlkCompletion> {
  const queue = driver.queue(index);
  const { memory } = driver;
  const readable = concat(request.header ?? header(request.type, request.sector ?? 0), request.out ?? new Uint8Array(0));
  const inLen = request.inLen ?? 0;
  const buffers: GuestBuffer[] = [];
  for (const [from, to] of pieces(readable.length, request.readableCuts)) {
    const addr = driver.allocate(to - from);
    memory.write(addr, readable.subarray(from, to));
    buffers.push({ addr, len: to - from, writable: false });
  }
  const writable: GuestBuffer[] = [];
  for (const [from, to] of pieces(inLen + (request.statusLen ?? 1), request.writableCuts)) {
    const addr = driver.allocate(to - from);
    memory.fill(addr, to - from, CANARY);
    writable.push({ addr, len: to - from, writable: true });
  }
  buffers.push(...writable);
  const indirect = request.indirect === true && hasFeature(driver.features, VIRTIO_F_INDIRECT_DESC);
  return whenUsed(driver, queue, queue.add(buffers, { indirect })).then((used) => {
    const bytes = new Uint8Array(writable.reduce((n, b) => n + b.len, 0));
    let at = 0;
    for (const b of writable) {
      memory.read(b.addr, bytes.subarray(at, at + b.len));
      at += b.len;
    }
    for (const b of buffers) driver.release(b.addr);
    return { status: bytes.length > inLen ? bytes[bytes.length - 1] : undefined, len: used.len, data: bytes.slice(0, inLen) };
  });
}

/** {@link add}, then the available buffer notification (unless the device suppressed it). */
export function submit(driver: VirtioDriver, request: BlkRequest, index = 0): Promise<BlkCompletion> {
  const completion = add(driver, request, index);
  driver.queue(index).kick();
  return completion;
}

/** Makes `buffers` available as one chain, as given (e.g. outside guest memory), and kicks; resolves with the used element. */
export function submitBuffers(driver: VirtioDriver, buffers: readonly GuestBuffer[], index = 0): Promise<UsedElement> {
  const queue = driver.queue(index);
  const used = whenUsed(driver, queue, queue.add(buffers, { indirect: false }));
  queue.kick();
  return used;
}

/** Chains {@link whenUsed} waits for, by queue and ID. */
const awaited = new WeakMap<DriverQueue, Map<number, { resolve: (used: UsedElement) => void; reject: (error: unknown) => void }>>();

/**
 * Resolves when the device uses chain `id` of `queue`, whichever order the
 * device uses chains in. Rejects if the driver saw the device misbehave (it
 * clamps a used length beyond the writable part, spec 2.7.8.2, and notes it).
 */
async function whenUsed(driver: VirtioDriver, queue: DriverQueue, id: number): Promise<UsedElement> {
  let waiting = awaited.get(queue);
  if (waiting === undefined) {
    waiting = new Map();
    awaited.set(queue, waiting);
  }
  const chains = waiting;
  const used = new Promise<UsedElement>((resolve, reject) => chains.set(id, { resolve, reject }));
  if (chains.size === 1) void dispatch(queue, chains);
  const element = await used;
  if (driver.deviceErrors.length > 0) throw new Error(`the driver saw the device misbehave: ${driver.deviceErrors.join('; ')}`);
  return element;
}

/** While chains are awaited, hands each used element the driver collects (on the device's interrupts) to its waiter, in used-ring order. */
async function dispatch(queue: DriverQueue, chains: Map<number, { resolve: (used: UsedElement) => void; reject: (error: unknown) => void }>): Promise<void> {
  try {
    while (chains.size > 0) {
      for (const used of await queue.waitUsed()) {
        const chain = chains.get(used.id);
        if (chain === undefined) throw new Error(`queue ${queue.index}: the device used ID ${used.id}, which no request waits for`);
        chains.delete(used.id);
        chain.resolve(used);
      }
    }
  } catch (error) {
    for (const chain of chains.values()) chain.reject(error);
    chains.clear();
  }
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

/** Bytes whose value depends on their position, so misplaced data shows. */
export function patterned(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + (i >> 9) * 13 + seed) & 0xff;
  return bytes;
}

/** Asserts two byte arrays are equal, reporting the first difference (vitest's deep equality is slow on megabytes). */
export function expectBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) throw new Error(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
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
