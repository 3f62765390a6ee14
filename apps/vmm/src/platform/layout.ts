/**
 * The x86-64 machine's guest-physical address map. RAM starts at 0 and
 * stops at the 32-bit MMIO hole; whatever does not fit below it continues at
 * 4 GiB. Inside the hole: the PCI 32-bit BAR window, the virtio-mmio device
 * slots, PCI ECAM, then the IOAPIC and local APIC at their architectural
 * addresses.
 */

/** Start of the 32-bit MMIO hole: RAM below, devices above. */
export const MMIO_HOLE_START = 0xc000_0000;
/** RAM that does not fit below the hole resumes here. */
export const HIGH_RAM_START = 0x1_0000_0000;

/** Window from which PCI BARs are allocated. */
export const PCI_MMIO_START = 0xc000_0000;
/** Size of that window. */
export const PCI_MMIO_SIZE = 0x1000_0000;

/** First virtio-mmio device slot; each device gets {@link VIRTIO_MMIO_SLOT_SIZE} bytes. */
export const VIRTIO_MMIO_START = 0xd000_0000;
/** Size of one virtio-mmio slot (the register block is 0x100 plus configuration space). */
export const VIRTIO_MMIO_SLOT_SIZE = 0x1000;
/** How many virtio-mmio slots there are: one per IOAPIC pin from {@link VIRTIO_MMIO_FIRST_GSI}. */
export const VIRTIO_MMIO_SLOTS = 8;
/** GSI of the first virtio-mmio device; they are level-triggered IOAPIC pins 16-23. */
export const VIRTIO_MMIO_FIRST_GSI = 16;

/** PCI Express ECAM for bus 0 (1 MiB: 32 devices x 8 functions x 4 KiB). */
export const ECAM_START = 0xe000_0000;
/** Size of ECAM for one bus. */
export const ECAM_SIZE = 0x10_0000;

/** The IOAPIC's register window. */
export const IOAPIC_START = 0xfec0_0000;
/** The local APICs' register window. */
export const LAPIC_START = 0xfee0_0000;
/** Where KVM puts the three pages Intel VMX needs for real-mode emulation (below the IOAPIC). */
export const KVM_TSS_START = 0xfffb_c000;

/** Number of IOAPIC pins KVM emulates. */
export const IOAPIC_PINS = 24;

/** Legacy port of the COM1 16550 UART and its ISA IRQ. */
export const COM1_PORT = 0x3f8;
/** ISA IRQ (and GSI) of COM1. */
export const COM1_IRQ = 4;

/** PCI configuration mechanism #1: address and data ports. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
/** PCI configuration data port (4 bytes). */
export const PCI_CONFIG_DATA_PORT = 0xcfc;

/** ACPI hardware-reduced sleep control and status registers (one byte each) and the reset register. */
export const ACPI_SLEEP_CONTROL_PORT = 0x600;
/** Sleep status register. */
export const ACPI_SLEEP_STATUS_PORT = 0x601;
/** Reset register: writing {@link ACPI_RESET_VALUE} resets the machine. */
export const ACPI_RESET_PORT = 0x602;
/** The value the FADT tells the OS to write to the reset register. */
export const ACPI_RESET_VALUE = 0x01;
/** The SLP_TYP value of the \_S5 (soft off) package in the DSDT. */
export const ACPI_S5_SLEEP_TYPE = 5;

/** Low-memory areas the boot path uses (all below 1 MiB). */
export const LOW = {
  /** The GDT the vCPU starts with. */
  gdt: 0x500,
  /** The IDT (empty: the kernel installs its own before enabling interrupts). */
  idt: 0x520,
  /** boot_params, the "zero page". */
  zeroPage: 0x7000,
  /** Page tables: PML4, PDPT, four page directories (identity map of the first 4 GiB). */
  pml4: 0x9000,
  /** The kernel command line. */
  cmdline: 0x2_0000,
  /** Largest command line accepted (the kernel's COMMAND_LINE_SIZE is 2048 on x86; 6.x allows more via cmdline_size). */
  cmdlineMax: 0x1_0000,
  /** Start of the BIOS area reserved in the e820 map (EBDA and ROMs). */
  biosStart: 0x9_fc00,
  /** The ACPI tables, where the RSDP is also found by a scan of 0xE0000-0xFFFFF. */
  acpi: 0xe_0000,
  /** End of the BIOS area. */
  biosEnd: 0x10_0000,
} as const;

/** One contiguous block of guest RAM. */
export interface RamBlock {
  /** Guest-physical address where the block starts. */
  readonly guestAddress: number;
  /** Length of the block in bytes. */
  readonly size: number;
}

/** Splits `size` bytes of RAM around the MMIO hole. */
export function ramBlocks(size: number): RamBlock[] {
  const low = Math.min(size, MMIO_HOLE_START);
  const blocks: RamBlock[] = [{ guestAddress: 0, size: low }];
  if (size > low) blocks.push({ guestAddress: HIGH_RAM_START, size: size - low });
  return blocks;
}
