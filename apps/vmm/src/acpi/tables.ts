/**
 * The ACPI tables of the VMM's x86-64 machine (ACPI 6.5, chapter 5): RSDP,
 * XSDT, a hardware-reduced FADT, MADT, MCFG, and the DSDT's header (its body
 * is AML, see dsdt.ts). Each builder returns the table's bytes with its
 * checksum set.
 */

/** OEM identification written into every table header. */
const OEM_ID = 'VIRTTS';
const OEM_TABLE_ID = 'VIRTIOTS';
const CREATOR_ID = 'VTTS';
const HEADER_SIZE = 36;

class TableWriter {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  ascii(offset: number, text: string): void {
    for (let i = 0; i < text.length; i++) this.bytes[offset + i] = text.charCodeAt(i);
  }
  u8(offset: number, value: number): void {
    this.view.setUint8(offset, value);
  }
  u16(offset: number, value: number): void {
    this.view.setUint16(offset, value, true);
  }
  u32(offset: number, value: number): void {
    this.view.setUint32(offset, value >>> 0, true);
  }
  u64(offset: number, value: number | bigint): void {
    this.view.setBigUint64(offset, BigInt(value), true);
  }
}

/** Sets byte `at` so that bytes [start, end) sum to zero modulo 256. */
export function setChecksum(bytes: Uint8Array, at: number, start = 0, end = bytes.length): void {
  bytes[at] = 0;
  let sum = 0;
  for (let i = start; i < end; i++) sum = (sum + (bytes[i] as number)) & 0xff;
  bytes[at] = (0x100 - sum) & 0xff;
}

/** A System Description Table header (5.2.6) followed by `bodySize` bytes. */
function table(signature: string, revision: number, bodySize: number): TableWriter {
  const w = new TableWriter(HEADER_SIZE + bodySize);
  w.ascii(0, signature);
  w.u32(4, HEADER_SIZE + bodySize);
  w.u8(8, revision);
  w.ascii(10, OEM_ID);
  w.ascii(16, OEM_TABLE_ID);
  w.u32(24, 1);
  w.ascii(28, CREATOR_ID);
  w.u32(32, 1);
  return w;
}

function finish(w: TableWriter): Uint8Array {
  setChecksum(w.bytes, 9);
  return w.bytes;
}

/** RSDP (5.2.5), revision 2: points to the XSDT only. */
export function buildRsdp(xsdtAddress: number): Uint8Array {
  const w = new TableWriter(36);
  w.ascii(0, 'RSD PTR ');
  w.ascii(9, OEM_ID);
  w.u8(15, 2);
  w.u32(16, 0);
  w.u32(20, 36);
  w.u64(24, xsdtAddress);
  setChecksum(w.bytes, 8, 0, 20);
  setChecksum(w.bytes, 32, 0, 36);
  return w.bytes;
}

/** XSDT (5.2.8): 64-bit addresses of the other tables (the DSDT is reached through the FADT). */
export function buildXsdt(entries: readonly number[]): Uint8Array {
  const w = table('XSDT', 1, entries.length * 8);
  entries.forEach((address, i) => w.u64(HEADER_SIZE + i * 8, address));
  return finish(w);
}

/** A Generic Address Structure (5.2.3.2) for one byte-wide I/O port. */
function ioPortGas(w: TableWriter, offset: number, port: number): void {
  w.u8(offset, 1); // SystemIO
  w.u8(offset + 1, 8); // register bit width
  w.u8(offset + 2, 0); // bit offset
  w.u8(offset + 3, 1); // byte access
  w.u64(offset + 4, port);
}

/** Where the hardware-reduced power registers are. */
export interface FadtPorts {
  /** I/O port of SLEEP_CONTROL_REG, where the guest writes SLP_TYP and SLP_EN to power off. */
  readonly sleepControl: number;
  /** I/O port of SLEEP_STATUS_REG, where the guest reads WAK_STS. */
  readonly sleepStatus: number;
  /** I/O port of RESET_REG, which resets the machine. */
  readonly reset: number;
  /** The byte (RESET_VALUE) the guest writes to `reset` to reset. */
  readonly resetValue: number;
}

const FADT_FLAG_WBINVD = 1 << 0;
const FADT_FLAG_PWR_BUTTON = 1 << 4;
const FADT_FLAG_SLP_BUTTON = 1 << 5;
const FADT_FLAG_RESET_REG_SUP = 1 << 10;
const FADT_FLAG_HW_REDUCED_ACPI = 1 << 20;
const BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2;
const BOOT_ARCH_CMOS_RTC_NOT_PRESENT = 1 << 5;

/**
 * FADT (5.2.9), revision 6.5, hardware-reduced: no PM1/GPE blocks and no SCI;
 * sleep control and status registers for S5, a reset register, and no 8042,
 * VGA or CMOS RTC.
 */
export function buildFadt(dsdtAddress: number, ports: FadtPorts): Uint8Array {
  const w = table('FACP', 6, 276 - HEADER_SIZE);
  w.u32(40, dsdtAddress);
  w.u16(109, BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT);
  w.u32(112, FADT_FLAG_WBINVD | FADT_FLAG_PWR_BUTTON | FADT_FLAG_SLP_BUTTON | FADT_FLAG_RESET_REG_SUP | FADT_FLAG_HW_REDUCED_ACPI);
  ioPortGas(w, 116, ports.reset);
  w.u8(128, ports.resetValue);
  w.u8(131, 5); // FADT minor version: ACPI 6.5
  w.u64(140, dsdtAddress);
  ioPortGas(w, 244, ports.sleepControl);
  ioPortGas(w, 256, ports.sleepStatus);
  w.ascii(268, 'VIRTIOTS');
  return finish(w);
}

/** What the MADT describes. */
export interface MadtConfig {
  /** Number of vCPUs; each gets a Local APIC whose ID equals its processor UID. */
  readonly cpus: number;
  /** Guest-physical address of the Local APIC registers. */
  readonly lapicAddress: number;
  /** Guest-physical address of the IOAPIC registers. */
  readonly ioapicAddress: number;
  /** The IOAPIC's APIC ID. */
  readonly ioapicId: number;
}

/**
 * MADT (5.2.12): one enabled Local APIC per vCPU, the IOAPIC from GSI 0, the
 * ISA override of IRQ 0 (the PIT) onto GSI 2, and LINT1 as NMI.
 */
export function buildMadt(config: MadtConfig): Uint8Array {
  const body = 8 + config.cpus * 8 + 12 + 10 + 6;
  const w = table('APIC', 5, body);
  w.u32(36, config.lapicAddress);
  w.u32(40, 1); // PCAT_COMPAT: the in-kernel 8259 pair exists (the OS masks it)
  let at = 44;
  for (let cpu = 0; cpu < config.cpus; cpu++) {
    w.u8(at, 0); // Processor Local APIC
    w.u8(at + 1, 8);
    w.u8(at + 2, cpu);
    w.u8(at + 3, cpu);
    w.u32(at + 4, 1); // enabled
    at += 8;
  }
  w.u8(at, 1); // I/O APIC
  w.u8(at + 1, 12);
  w.u8(at + 2, config.ioapicId);
  w.u32(at + 4, config.ioapicAddress);
  w.u32(at + 8, 0);
  at += 12;
  w.u8(at, 2); // Interrupt Source Override: ISA IRQ 0 -> GSI 2, bus-default polarity and trigger
  w.u8(at + 1, 10);
  w.u8(at + 2, 0);
  w.u8(at + 3, 0);
  w.u32(at + 4, 2);
  w.u16(at + 8, 0);
  at += 10;
  w.u8(at, 4); // Local APIC NMI: all processors, LINT1
  w.u8(at + 1, 6);
  w.u8(at + 2, 0xff);
  w.u16(at + 3, 0);
  w.u8(at + 5, 1);
  return finish(w);
}

/** MCFG (PCI Firmware 3.2, 4.1.2): one ECAM range for segment 0, buses `startBus`-`endBus`. */
export function buildMcfg(ecamAddress: number, startBus: number, endBus: number): Uint8Array {
  const w = table('MCFG', 1, 8 + 16);
  w.u64(44, ecamAddress);
  w.u16(52, 0);
  w.u8(54, startBus);
  w.u8(55, endBus);
  return finish(w);
}

/** DSDT (5.2.11.1): a header around the AML definition block. */
export function buildDsdt(aml: Uint8Array): Uint8Array {
  const w = table('DSDT', 2, aml.length);
  w.bytes.set(aml, HEADER_SIZE);
  return finish(w);
}
