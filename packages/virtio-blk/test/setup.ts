import { CoreTransport } from '@virtio-ts/driver';
import { GuestMemory } from '@virtio-ts/virtqueue';
import { MemoryBackend, VirtioBlk, type VirtioBlkOptions } from '../src/index.js';
import { BlkGuest, type GuestOptions } from './guest.js';

/** A device on a CoreTransport with a guest driving it. */
export interface Rig {
  readonly blk: VirtioBlk;
  readonly backend: MemoryBackend;
  readonly transport: CoreTransport;
  readonly guest: BlkGuest;
}

/** A memory-backed disk of `sectors` sectors, patterned so that every sector differs. */
export function rig(sectors = 64, options: Partial<VirtioBlkOptions> = {}, guestOptions: GuestOptions = {}): Rig {
  const backend = (options.backend as MemoryBackend | undefined) ?? new MemoryBackend(patterned(sectors * 512));
  const blk = new VirtioBlk({ ...options, backend });
  const transport = new CoreTransport(GuestMemory.create(8 << 20), blk);
  const guest = BlkGuest.start(transport, guestOptions);
  return { blk, backend, transport, guest };
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
