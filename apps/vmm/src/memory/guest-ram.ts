import { GuestMemory } from '@virtio-ts/virtqueue';
import { KvmError } from '../kvm/errors.js';
import { MADV_DONTNEED, MAP_FAILED, MAP_GUEST_RAM, PROT_RW, libc } from '../kvm/libc.js';
import type { Vm } from '../kvm/vm.js';
import { ramBlocks, type RamBlock } from '../platform/layout.js';

/**
 * Guest RAM: one private anonymous mapping, registered with KVM as one memory
 * slot per block and seen by devices as a {@link GuestMemory} whose regions
 * are zero-copy views of the same pages. Pages are committed as the guest
 * touches them (MAP_NORESERVE).
 */
export class GuestRam {
  /** The devices' view of guest memory. */
  readonly memory: GuestMemory;
  /** RAM blocks by guest address. */
  readonly blocks: readonly RamBlock[];
  /** Total bytes of RAM. */
  readonly size: number;
  /** Host address of the mapping. */
  readonly hostAddress: bigint;
  private released = false;

  /** Maps `size` bytes and registers them with `vm`. */
  constructor(vm: Vm, size: number) {
    const c = libc();
    this.size = size;
    this.blocks = ramBlocks(size);
    this.hostAddress = c.mmap(size, PROT_RW, MAP_GUEST_RAM, -1, 0);
    if (this.hostAddress === MAP_FAILED) throw new KvmError(`mmap of ${size} bytes of guest RAM`, c.errno());
    let offset = 0n;
    const regions = this.blocks.map((block) => {
      const host = this.hostAddress + offset;
      vm.addMemory(block.guestAddress, block.size, host);
      offset += BigInt(block.size);
      return { guestAddress: block.guestAddress, buffer: c.view(host, block.size) };
    });
    this.memory = new GuestMemory(regions);
  }

  /**
   * Gives the RAM's pages back to the host. The range stays mapped (reading
   * zeros) rather than being unmapped, because views of it may outlive the
   * machine in JavaScript objects (a device's late I/O completion), and
   * touching an unmapped view would crash the process instead of being
   * harmless.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    libc().madvise(this.hostAddress, this.size, MADV_DONTNEED);
  }
}
