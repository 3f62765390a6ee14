import type { RamBlock } from '../platform/layout.js';
import { LOW } from '../platform/layout.js';

/** e820 entry types (ACPI 6.5, 15.1). */
export const E820_RAM = 1;
/** Reserved: not RAM the OS may use. */
export const E820_RESERVED = 2;

/** One entry of the BIOS memory map. */
export interface E820Entry {
  /** Start of the range, guest-physical. */
  readonly address: number;
  /** Length of the range in bytes. */
  readonly size: number;
  /** What the range is: {@link E820_RAM} or {@link E820_RESERVED}. */
  readonly type: number;
}

/**
 * The memory map handed to the kernel: RAM below the EBDA, the BIOS area
 * (EBDA, ACPI tables, ROM) reserved, RAM from 1 MiB to the MMIO hole and
 * above 4 GiB, and the reserved ranges given (such as ECAM, which Linux
 * requires to be reserved before it uses MMCONFIG).
 */
export function e820Map(ram: readonly RamBlock[], reserved: readonly { start: number; size: number }[]): E820Entry[] {
  const entries: E820Entry[] = [];
  for (const block of ram) {
    if (block.guestAddress === 0) {
      entries.push({ address: 0, size: LOW.biosStart, type: E820_RAM });
      entries.push({ address: LOW.biosStart, size: LOW.biosEnd - LOW.biosStart, type: E820_RESERVED });
      if (block.size > LOW.biosEnd) entries.push({ address: LOW.biosEnd, size: block.size - LOW.biosEnd, type: E820_RAM });
    } else {
      entries.push({ address: block.guestAddress, size: block.size, type: E820_RAM });
    }
  }
  for (const r of reserved) entries.push({ address: r.start, size: r.size, type: E820_RESERVED });
  return entries.sort((a, b) => a.address - b.address);
}
