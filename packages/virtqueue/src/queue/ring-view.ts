import type { GuestMemory, GuestMemoryRegion } from '../memory/guest-memory.js';

/*
 * Rings are little-endian (spec 2.7, 2.8) and naturally aligned, so on the
 * little-endian hosts JavaScript runs on they are read with plain typed arrays,
 * and their index and flag fields with Atomics for ordering against the driver.
 */
const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Why a ring area cannot be used, or undefined if it can. */
export function ringAreaProblem(memory: GuestMemory, addr: number, bytes: number, align: number): string | undefined {
  if (!Number.isSafeInteger(addr) || addr < 0) return `address ${addr} is not a guest address`;
  if (addr % align !== 0) return `address 0x${addr.toString(16)} is not aligned to ${align}`;
  if (memory.regionIndexOf(addr, bytes, 'write') < 0) {
    return `[0x${addr.toString(16)}, +${bytes}) is not inside one writable region of guest memory`;
  }
  return undefined;
}

/** A u16 view of [addr, addr + bytes), which the caller has checked with {@link ringAreaProblem}. */
export function ringU16(memory: GuestMemory, addr: number, bytes: number): Uint16Array {
  const [buffer, offset] = locate(memory, addr, bytes);
  return new Uint16Array(buffer, offset, bytes >>> 1);
}

/** A u32 view of [addr, addr + bytes), 4-aligned and checked with {@link ringAreaProblem}. */
export function ringU32(memory: GuestMemory, addr: number, bytes: number): Uint32Array {
  const [buffer, offset] = locate(memory, addr, bytes);
  return new Uint32Array(buffer, offset, bytes >>> 2);
}

function locate(memory: GuestMemory, addr: number, bytes: number): [ArrayBufferLike, number] {
  if (!hostIsLittleEndian) throw new Error('virtio rings need a little-endian host');
  const region = memory.regions[memory.regionIndexOf(addr, bytes, 'write')] as GuestMemoryRegion;
  return [region.bytes.buffer, region.bytes.byteOffset + (addr - region.guestAddress)];
}
