import { GuestMemory, type MemoryRegionInit } from '@virtio-ts/virtqueue';
import { ProtocolError, type MemoryRegionDesc } from '../protocol/message.js';
import { closeQuietly } from '../sys/libc.js';
import { MAX_VIEW_BYTES, fileSize, mapShared, type SharedMapping } from '../sys/mapping.js';

/** One region of the front-end's memory, mapped into this process. */
interface MappedRegion {
  readonly desc: MemoryRegionDesc;
  readonly mapping: SharedMapping;
}

/**
 * The front-end's memory table: regions it shared by file descriptor, mapped
 * here, with their guest-physical and front-end user addresses. Produces the
 * {@link GuestMemory} that queues read (keyed by guest-physical address) and
 * translates the user addresses SET_VRING_ADDR carries.
 */
export class MemoryTable {
  /** Guest memory over the current regions (empty before the first table). */
  memory: GuestMemory = new GuestMemory([]);
  private regions: MappedRegion[] = [];
  /** Regions no longer in the table; released once nothing can reach them. */
  private retired: MappedRegion[] = [];

  /** Replaces the whole table (SET_MEM_TABLE). Takes ownership of `fds`. */
  replace(descs: readonly MemoryRegionDesc[], fds: readonly number[]): void {
    try {
      if (fds.length !== descs.length) throw new ProtocolError(`memory table has ${descs.length} regions but ${fds.length} descriptors`);
      const mapped: MappedRegion[] = [];
      try {
        for (let i = 0; i < descs.length; i++) mapped.push(map(descs[i] as MemoryRegionDesc, fds[i] as number));
        this.rebuild(mapped);
      } catch (error) {
        for (const region of mapped) region.mapping.release();
        throw error;
      }
      this.retired.push(...this.regions);
      this.regions = mapped;
    } finally {
      for (const fd of fds) closeQuietly(fd);
    }
  }

  /** Adds one region (ADD_MEM_REG). Takes ownership of `fds`, which must hold exactly one descriptor. */
  add(desc: MemoryRegionDesc, fds: readonly number[], maxRegions: number): void {
    try {
      if (fds.length !== 1) throw new ProtocolError(`ADD_MEM_REG carries ${fds.length} descriptors, expected 1`);
      if (this.regions.length >= maxRegions) throw new ProtocolError(`all ${maxRegions} memory slots are in use`);
      const region = map(desc, fds[0] as number);
      const next = [...this.regions, region];
      try {
        this.rebuild(next);
      } catch (error) {
        region.mapping.release();
        throw error;
      }
      this.regions = next;
    } finally {
      for (const fd of fds) closeQuietly(fd);
    }
  }

  /** Removes the region with the same guest address, user address and size (REM_MEM_REG). */
  remove(desc: MemoryRegionDesc): void {
    const index = this.regions.findIndex(
      (r) => r.desc.guestAddress === desc.guestAddress && r.desc.userAddress === desc.userAddress && r.desc.size === desc.size,
    );
    if (index < 0) throw new ProtocolError(`no memory region at guest address 0x${desc.guestAddress.toString(16)} to remove`);
    const next = this.regions.filter((_, i) => i !== index);
    this.rebuild(next);
    this.retired.push(this.regions[index] as MappedRegion);
    this.regions = next;
  }

  /**
   * The guest-physical address of `length` bytes at front-end user address
   * `userAddress`, or undefined unless the range lies inside one region.
   */
  translate(userAddress: number, length: number): number | undefined {
    for (const { desc } of this.regions) {
      const offset = userAddress - desc.userAddress;
      if (offset >= 0 && offset <= desc.size - length) return desc.guestAddress + offset;
    }
    return undefined;
  }

  /** Releases regions dropped from the table. Call when no queue or device can still hold views of them. */
  releaseRetired(): void {
    for (const region of this.retired) region.mapping.release();
    this.retired = [];
  }

  /** Releases everything (the front-end went away or reset the device). */
  clear(): void {
    this.retired.push(...this.regions);
    this.regions = [];
    this.memory = new GuestMemory([]);
    this.releaseRetired();
  }

  private rebuild(regions: readonly MappedRegion[]): void {
    const inits: MemoryRegionInit[] = [];
    for (const { desc, mapping } of regions) {
      mapping.pieces.forEach((buffer, i) => inits.push({ guestAddress: desc.guestAddress + i * MAX_VIEW_BYTES, buffer }));
    }
    try {
      this.memory = new GuestMemory(inits);
    } catch (error) {
      throw new ProtocolError(`memory table refused: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

function map(desc: MemoryRegionDesc, fd: number): MappedRegion {
  if (desc.guestAddress % 8 !== 0) throw new ProtocolError(`memory region guest address 0x${desc.guestAddress.toString(16)} is not 8-byte aligned`);
  const available = fileSize(fd);
  if (available !== undefined && available < desc.mmapOffset + desc.size) {
    throw new ProtocolError(
      `memory region [0x${desc.guestAddress.toString(16)}, +0x${desc.size.toString(16)}) at offset 0x${desc.mmapOffset.toString(16)} runs past the end of its file (0x${available.toString(16)} bytes)`,
    );
  }
  try {
    return { desc, mapping: mapShared(fd, desc.mmapOffset, desc.size) };
  } catch (error) {
    throw new ProtocolError(`cannot map memory region: ${error instanceof Error ? error.message : String(error)}`);
  }
}
