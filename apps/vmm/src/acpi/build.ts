import { buildDsdtAml, type DsdtConfig } from './dsdt.js';
import { buildDsdt, buildFadt, buildMadt, buildMcfg, buildRsdp, buildXsdt, type FadtPorts, type MadtConfig } from './tables.js';

/** Everything the machine's ACPI tables describe. */
export interface AcpiConfig {
  /** The devices the DSDT's AML describes. */
  readonly dsdt: DsdtConfig;
  /** The interrupt controllers and vCPUs the MADT lists. */
  readonly madt: MadtConfig;
  /** The hardware-reduced sleep and reset registers the FADT points at. */
  readonly fadt: FadtPorts;
  /** Base of PCI segment 0's ECAM (buses 0..0), which the MCFG gives. */
  readonly ecamBase: number;
}

/** One placed table. */
export interface PlacedTable {
  /** The table's four-character signature ('RSDP' for the root pointer). */
  readonly signature: string;
  /** Guest-physical address of the table, 16-byte aligned. */
  readonly address: number;
  /** The encoded table, checksum included. */
  readonly bytes: Uint8Array;
}

/** The tables laid out for copying into guest memory at `base`. */
export interface AcpiTables {
  /** Guest-physical address of the RSDP (boot_params.acpi_rsdp_addr). */
  readonly rsdpAddress: number;
  /** Each table, RSDP first. */
  readonly tables: readonly PlacedTable[];
  /** All of them as one block starting at `base`. */
  readonly blob: Uint8Array;
}

/**
 * Builds RSDP, DSDT, FACP, APIC, MCFG and XSDT and places them one after the
 * other from `base` (16-byte aligned, so an OS scanning the BIOS area for the
 * RSDP finds it too).
 */
export function buildAcpiTables(config: AcpiConfig, base: number): AcpiTables {
  const align = (n: number): number => (n + 15) & ~15;
  const rsdpAddress = base;
  let next = align(rsdpAddress + 36);
  const place = (signature: string, bytes: Uint8Array): PlacedTable => {
    const t = { signature, address: next, bytes };
    next = align(next + bytes.length);
    return t;
  };
  const dsdt = place('DSDT', buildDsdt(buildDsdtAml(config.dsdt)));
  const fadt = place('FACP', buildFadt(dsdt.address, config.fadt));
  const madt = place('APIC', buildMadt(config.madt));
  const mcfg = place('MCFG', buildMcfg(config.ecamBase, 0, 0));
  const xsdtAddress = next;
  const xsdt = place('XSDT', buildXsdt([fadt.address, madt.address, mcfg.address]));
  const rsdp: PlacedTable = { signature: 'RSDP', address: rsdpAddress, bytes: buildRsdp(xsdtAddress) };
  const tables = [rsdp, dsdt, fadt, madt, mcfg, xsdt];
  const blob = new Uint8Array(next - base);
  for (const t of tables) blob.set(t.bytes, t.address - base);
  return { rsdpAddress, tables, blob };
}
