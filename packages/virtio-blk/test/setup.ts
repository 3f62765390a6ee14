import { CcwDriverTransport, CoreTransport, type DriverTransport, type TransportFactory } from '@virtio-ts/driver';
import { CcwTransport, diagnose500 } from '@virtio-ts/transport-ccw';
import { connectMmio, mmioTransportFactory } from '@virtio-ts/transport-mmio/testing';
import { connectPci, connectPciLegacy, pciTransportFactory } from '@virtio-ts/transport-pci/testing';
import { GuestMemory, VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_RING_RESET, featureBit, type VirtioDevice } from '@virtio-ts/virtqueue';
import { GuestAllocator } from '@virtio-ts/virtqueue/testing';
import { MemoryBackend, VirtioBlk, type VirtioBlkOptions } from '../src/index.js';
import { GatedBackend } from './gated-backend.js';
import { BlkGuest, type GuestOptions } from './guest.js';

/** The transports the tests run over ('pci-legacy': a transitional function driven by a legacy driver). */
export type TransportKind = 'core' | 'mmio' | 'pci' | 'ccw' | 'pci-legacy';

/** Every transport kind: the status machine directly, and each real transport. */
export const TRANSPORTS: readonly TransportKind[] = ['core', 'mmio', 'pci', 'ccw'];

/**
 * Puts `device` behind a transport of `kind` and returns the guest's side of
 * it, with the transport's interrupts (MMIO line, PCI MSI-X, CCW adapter
 * interruptions) wired to the driver as a platform would.
 */
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
        // The first page, which BlkGuest and VirtioDriver both leave to the platform.
        allocator: new GuestAllocator(0x100, 0x1000, { seed: 3, maxGap: 16 }),
        subchannelId,
        hypercall: (registers) => diagnose500(registers, (sid) => (sid === subchannelId ? transport : undefined)),
      });
      return link.driver;
    }
  }
}

/**
 * The conformance suite's transports: MMIO and PCI through their packages'
 * `./testing` factories; the status machine and CCW (whose package has no
 * such factory yet) through {@link connect}.
 */
export const TRANSPORT_FACTORIES: readonly TransportFactory[] = [
  { name: 'core', create: (memory, device) => connect('core', memory, device) },
  mmioTransportFactory(),
  pciTransportFactory(),
  { name: 'ccw', create: (memory, device) => connect('ccw', memory, device) },
];

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
