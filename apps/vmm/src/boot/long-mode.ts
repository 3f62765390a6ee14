import type { GuestMemory } from '@virtio-ts/virtqueue';
import { REG, REGS_SIZE, SEGMENT, SREGS } from '../kvm/layout.js';
import { LAPIC_START, LOW } from '../platform/layout.js';

/** Selectors the Linux 64-bit boot protocol requires: __BOOT_CS and __BOOT_DS. */
export const BOOT_CS = 0x10;
/** Data selector for DS, ES, SS. */
export const BOOT_DS = 0x18;
/** The task register's selector (VMX refuses to enter 64-bit mode without a 64-bit TSS). */
const BOOT_TSS = 0x20;

const CR0_PE = 1 << 0;
const CR0_MP = 1 << 1;
const CR0_ET = 1 << 4;
const CR0_NE = 1 << 5;
const CR0_WP = 1 << 16;
const CR0_PG = 0x8000_0000;
const CR4_PAE = 1 << 5;
const EFER_LME = 1 << 8;
const EFER_LMA = 1 << 10;
/** IA32_APIC_BASE: the local APIC at its default address, enabled, this CPU the bootstrap processor. */
const APIC_BASE_BSP = BigInt(LAPIC_START) | 0x800n | 0x100n;
const PTE_PRESENT = 1n;
const PTE_WRITABLE = 2n;
const PDE_LARGE = 0x80n;

/** GDT entries: null, null, 64-bit code (0x10), data (0x18), 64-bit TSS (0x20, two slots). */
const GDT = [0n, 0n, 0x00af_9b00_0000_ffffn, 0x00cf_9300_0000_ffffn, 0x0000_8b00_0000_0067n, 0n];

/**
 * Writes the GDT and identity-mapping page tables for the first 4 GiB (2 MiB
 * pages: the kernel, boot_params, the command line, the initrd and the
 * platform's MMIO all lie below 4 GiB) into low guest memory.
 */
export function writeLongModeTables(memory: GuestMemory): void {
  GDT.forEach((entry, i) => memory.setU64(LOW.gdt + i * 8, entry));
  const pml4 = LOW.pml4;
  const pdpt = pml4 + 0x1000;
  const pd = pml4 + 0x2000;
  memory.fill(pml4, 0x6000, 0);
  memory.setU64(pml4, BigInt(pdpt) | PTE_PRESENT | PTE_WRITABLE);
  for (let g = 0; g < 4; g++) {
    memory.setU64(pdpt + g * 8, BigInt(pd + g * 0x1000) | PTE_PRESENT | PTE_WRITABLE);
    for (let i = 0; i < 512; i++) {
      const address = BigInt(g) * 0x4000_0000n + BigInt(i) * 0x20_0000n;
      memory.setU64(pd + g * 0x1000 + i * 8, address | PTE_PRESENT | PTE_WRITABLE | PDE_LARGE);
    }
  }
}

function segment(view: DataView, at: number, selector: number, type: number, code: boolean, system = false): void {
  view.setBigUint64(at + SEGMENT.base, 0n, true);
  view.setUint32(at + SEGMENT.limit, system ? 0x67 : 0xffff_ffff, true);
  view.setUint16(at + SEGMENT.selector, selector, true);
  view.setUint8(at + SEGMENT.type, type);
  view.setUint8(at + SEGMENT.present, 1);
  view.setUint8(at + SEGMENT.dpl, 0);
  view.setUint8(at + SEGMENT.db, code || system ? 0 : 1);
  view.setUint8(at + SEGMENT.s, system ? 0 : 1);
  view.setUint8(at + SEGMENT.l, code ? 1 : 0);
  view.setUint8(at + SEGMENT.g, system ? 0 : 1);
  view.setUint8(at + SEGMENT.avl, 0);
  view.setUint8(at + SEGMENT.unusable, 0);
}

/**
 * struct kvm_sregs for 64-bit mode with paging through the tables
 * {@link writeLongModeTables} wrote, flat segments, interrupts off, and the
 * bootstrap processor's local APIC enabled.
 */
export function longModeSregs(): Uint8Array {
  const sregs = new Uint8Array(SREGS.size);
  const v = new DataView(sregs.buffer);
  segment(v, SREGS.cs, BOOT_CS, 0xb, true);
  for (const at of [SREGS.ds, SREGS.es, SREGS.fs, SREGS.gs, SREGS.ss]) segment(v, at, BOOT_DS, 0x3, false);
  segment(v, SREGS.tr, BOOT_TSS, 0xb, false, true);
  v.setBigUint64(SREGS.gdt, BigInt(LOW.gdt), true);
  v.setUint16(SREGS.gdt + 8, GDT.length * 8 - 1, true);
  v.setBigUint64(SREGS.idt, BigInt(LOW.idt), true);
  v.setUint16(SREGS.idt + 8, 0, true);
  v.setBigUint64(SREGS.cr0, BigInt(CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP) | BigInt(CR0_PG), true);
  v.setBigUint64(SREGS.cr3, BigInt(LOW.pml4), true);
  v.setBigUint64(SREGS.cr4, BigInt(CR4_PAE), true);
  v.setBigUint64(SREGS.efer, BigInt(EFER_LME | EFER_LMA), true);
  v.setBigUint64(SREGS.apicBase, APIC_BASE_BSP, true);
  segment(v, SREGS.ldt, 0, 0x2, false, true);
  v.setUint8(SREGS.ldt + SEGMENT.unusable, 1);
  return sregs;
}

/** struct kvm_regs: `rip`, `rsi` (boot_params for Linux), `rsp`, and RFLAGS with only the reserved bit 1. */
export function entryRegs(rip: number, rsi: number, rsp = 0): Uint8Array {
  const regs = new Uint8Array(REGS_SIZE);
  const v = new DataView(regs.buffer);
  v.setBigUint64(REG.rip * 8, BigInt(rip), true);
  v.setBigUint64(REG.rsi * 8, BigInt(rsi), true);
  v.setBigUint64(REG.rsp * 8, BigInt(rsp), true);
  v.setBigUint64(REG.rflags * 8, 2n, true);
  return regs;
}
