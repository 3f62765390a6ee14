import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AmlInteger, eisaId, nameString, pkgLength } from './aml.js';
import { buildAcpiTables, type AcpiConfig } from './build.js';

const config: AcpiConfig = {
  dsdt: {
    serial: { port: 0x3f8, irq: 4 },
    virtioMmio: [
      { base: 0xd000_0000, size: 0x1000, gsi: 16 },
      { base: 0xd000_1000, size: 0x1000, gsi: 17 },
    ],
    pci: { ecamBase: 0xe000_0000, ecamSize: 0x10_0000, mmioBase: 0xc000_0000, mmioSize: 0x1000_0000, configPort: 0xcf8 },
    s5SleepType: 5,
  },
  madt: { cpus: 2, lapicAddress: 0xfee0_0000, ioapicAddress: 0xfec0_0000, ioapicId: 0 },
  fadt: { sleepControl: 0x600, sleepStatus: 0x601, reset: 0x602, resetValue: 1 },
  ecamBase: 0xe000_0000,
};

function sum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + (bytes[i] as number)) & 0xff;
  return s;
}

/** Decodes a PkgLength as ACPI 6.5, 20.2.4 defines it. */
function decodePkgLength(bytes: Uint8Array): { value: number; size: number } {
  const lead = bytes[0] as number;
  const extra = lead >> 6;
  if (extra === 0) return { value: lead & 0x3f, size: 1 };
  let value = lead & 0x0f;
  for (let i = 0; i < extra; i++) value |= (bytes[1 + i] as number) << (4 + 8 * i);
  return { value, size: 1 + extra };
}

describe('AML encoding', () => {
  it('encodes PkgLength so that it counts itself and decodes back (ACPI 20.2.4)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: (1 << 28) - 5 }), (content) => {
        const encoded = pkgLength(content);
        const decoded = decodePkgLength(encoded);
        expect(decoded.size).toBe(encoded.length);
        expect(decoded.value).toBe(content + encoded.length);
        // The shortest form is used: one byte exactly when the total is below 64.
        expect(encoded.length === 1).toBe(content + 1 < 0x40);
      }),
    );
  });

  it('compresses EISA IDs as _HID expects', () => {
    expect(eisaId('PNP0A08').value).toBe(0x080ad041);
    expect(eisaId('PNP0A03').value).toBe(0x030ad041);
    expect(eisaId('PNP0501').value).toBe(0x0105d041);
    expect(() => eisaId('pnp0a08')).toThrow(RangeError);
  });

  it('encodes name strings with prefixes and multi-segment paths', () => {
    expect([...nameString('_HID')]).toEqual([0x5f, 0x48, 0x49, 0x44]);
    expect([...nameString('\\_SB')]).toEqual([0x5c, 0x5f, 0x53, 0x42, 0x5f]);
    expect([...nameString('\\_SB.PCI0')]).toEqual([0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30]);
    expect(nameString('A.B.C')[0]).toBe(0x2f);
    expect(() => nameString('toolong')).toThrow(RangeError);
  });

  it('encodes integers in the smallest form', () => {
    expect([...new AmlInteger(0).encode()]).toEqual([0x00]);
    expect([...new AmlInteger(1).encode()]).toEqual([0x01]);
    expect([...new AmlInteger(0x12).encode()]).toEqual([0x0a, 0x12]);
    expect([...new AmlInteger(0x1234).encode()]).toEqual([0x0b, 0x34, 0x12]);
    expect([...new AmlInteger(0xd000_0000).encode()]).toEqual([0x0c, 0x00, 0x00, 0x00, 0xd0]);
    expect(new AmlInteger(0x1_0000_0000n).encode()[0]).toBe(0x0e);
  });
});

describe('ACPI tables', () => {
  const tables = buildAcpiTables(config, 0xe_0000);

  it('places the RSDP first, 16-byte aligned, with both checksums valid (ACPI 5.2.5.3)', () => {
    const rsdp = tables.tables[0];
    expect(rsdp?.signature).toBe('RSDP');
    expect(tables.rsdpAddress % 16).toBe(0);
    expect(Buffer.from(rsdp?.bytes.subarray(0, 8) ?? []).toString('latin1')).toBe('RSD PTR ');
    expect(sum(rsdp?.bytes ?? new Uint8Array(1), 0, 20)).toBe(0);
    expect(sum(rsdp?.bytes ?? new Uint8Array(1))).toBe(0);
  });

  it('gives every table a header whose length and checksum are right', () => {
    for (const t of tables.tables.slice(1)) {
      const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
      expect(view.getUint32(4, true), t.signature).toBe(t.bytes.length);
      expect(sum(t.bytes), t.signature).toBe(0);
      expect(t.address % 16).toBe(0);
    }
  });

  it('links RSDP -> XSDT -> FACP, APIC, MCFG and FACP -> DSDT', () => {
    const at = (signature: string): number => tables.tables.find((t) => t.signature === signature)?.address ?? -1;
    const blob = new DataView(tables.blob.buffer);
    const read64 = (address: number): number => Number(blob.getBigUint64(address - 0xe_0000, true));
    const xsdt = read64(tables.rsdpAddress + 24);
    expect(xsdt).toBe(at('XSDT'));
    expect([read64(xsdt + 36), read64(xsdt + 44), read64(xsdt + 52)]).toEqual([at('FACP'), at('APIC'), at('MCFG')]);
    expect(read64(at('FACP') + 140)).toBe(at('DSDT'));
  });

  const iasl = spawnSync('iasl', ['-v']).status !== null;
  if (!iasl) console.warn('SKIP: iasl (Debian acpica-tools) is not installed; the ACPI tables are not checked by the reference disassembler');
  const dir = mkdtempSync(join(tmpdir(), 'vmm-acpi-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.skipIf(!iasl)('disassembles with iasl with no errors, warnings or checksum complaints', () => {
    for (const t of tables.tables.slice(1)) {
      const file = join(dir, `${t.signature.toLowerCase()}.dat`);
      writeFileSync(file, t.bytes);
      const out = spawnSync('iasl', ['-d', file], { encoding: 'utf8' });
      const text = `${out.stdout}${out.stderr}`;
      expect(out.status, text).toBe(0);
      expect(text, t.signature).not.toMatch(/error|warning|incorrect|invalid/i);
      const dsl = readFileSync(file.replace(/\.dat$/, '.dsl'), 'utf8');
      expect(dsl, t.signature).not.toMatch(/incorrect|invalid|unknown/i);
    }
  });

  it.skipIf(!iasl)('describes the devices in a DSDT that iasl disassembles and compiles back cleanly', () => {
    const file = join(dir, 'dsdt.dat');
    writeFileSync(file, tables.tables.find((t) => t.signature === 'DSDT')?.bytes ?? new Uint8Array());
    execFileSync('iasl', ['-d', file], { stdio: 'pipe' });
    const dsl = readFileSync(join(dir, 'dsdt.dsl'), 'utf8');
    expect(dsl).toContain('Name (_HID, "LNRO0005")');
    expect(dsl).toMatch(/Memory32Fixed \(ReadWrite,\s+0xD0001000,\s+\/\/ Address Base\s+0x00001000,/);
    expect(dsl).toMatch(/Interrupt \(ResourceConsumer, Level, ActiveHigh, Exclusive, ,, \)\s+\{\s+0x00000011,/);
    expect(dsl).toContain('EisaId ("PNP0A08")');
    expect(dsl).toContain('EisaId ("PNP0A03")');
    expect(dsl).toContain('EisaId ("PNP0C02")');
    expect(dsl).toContain('Name (\\_S5, Package (0x02)');
    const compiled = spawnSync('iasl', [join(dir, 'dsdt.dsl')], { encoding: 'utf8', cwd: dir });
    expect(`${compiled.stdout}${compiled.stderr}`).toMatch(/0 Errors, 0 Warnings/);
  });
});
