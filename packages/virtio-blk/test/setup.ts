import { CoreTransport, MmioDriverTransport, type DriverTransport } from '@virtio-ts/driver';
import { MmioTransport } from '@virtio-ts/transport-mmio';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { MemoryBackend, VirtioBlk, type VirtioBlkOptions } from '../src/index.js';
import { GatedBackend } from './gated-backend.js';
import { BlkGuest, type GuestOptions } from './guest.js';

/** The transports the tests run over. */
export type TransportKind = 'core' | 'mmio';

/** Every transport kind available here. */
export const TRANSPORTS: readonly TransportKind[] = ['core', 'mmio'];

/** Puts `device` behind a transport of `kind` and returns the guest's side of it. */
export function connect(kind: TransportKind, memory: GuestMemory, device: VirtioDevice): DriverTransport {
  if (kind === 'core') return new CoreTransport(memory, device);
  const line = { driver: undefined as MmioDriverTransport | undefined };
  const transport = new MmioTransport({ device, memory, baseAddress: 0xd000_0000, irq: { number: 5, set: (level) => line.driver?.interruptLine(level) } });
  line.driver = new MmioDriverTransport(transport, memory);
  return line.driver;
}

/** A device on a transport with a guest driving it. */
export interface Rig {
  readonly blk: VirtioBlk;
  /** The disk image (inside the gate when there is one). */
  readonly backend: MemoryBackend;
  /** Controls the timing of backend operations. */
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
  /** An existing image (default: a patterned one of `sectors` sectors). */
  readonly image?: MemoryBackend;
}

/** A memory-backed disk, patterned so that every sector differs, behind a gate that lets everything through until told otherwise. */
export function rig(options: RigOptions = {}): Rig {
  const backend = options.image ?? new MemoryBackend(patterned((options.sectors ?? 64) * 512));
  const gate = new GatedBackend(backend);
  const blk = new VirtioBlk({ ...options.device, backend: gate });
  const transport = connect(options.transport ?? 'core', GuestMemory.create(8 << 20), blk);
  const guest = BlkGuest.start(transport, options.guest);
  return { blk, backend, gate, transport, guest };
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
