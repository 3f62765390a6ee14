import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Machine } from '../machine.js';
import { ECAM_SIZE, ECAM_START, ramBlocks } from '../platform/layout.js';
import { ConsoleWatcher } from '../testing/console-watcher.js';
import { kvmUnavailableReason } from '../testing/kvm-available.js';
import { E820_RAM, e820Map } from './e820.js';

/**
 * Boots the host's stock Debian kernel (linux-image-amd64) and reads, from
 * its early console, the banner, the e820 map the VMM handed it and the ACPI
 * tables it found. Where guest ring-0 code is emulated (kvm_pvm) this part of
 * the boot takes about 20 s of guest time; the bound below leaves room for a
 * loaded CI machine without letting a hung boot stall the suite.
 */
const BOOT_BOUND_MS = 240_000;
const MEMORY = 256 * 1024 * 1024;

function stockKernel(): string | undefined {
  try {
    const names = readdirSync('/boot').filter((n) => /^vmlinuz-.*-amd64$/.test(n)).sort();
    const last = names.at(-1);
    return last === undefined ? undefined : `/boot/${last}`;
  } catch {
    return undefined;
  }
}

const kernel = stockKernel();
const skip = kvmUnavailableReason() ?? (kernel === undefined ? 'no /boot/vmlinuz-*-amd64 (install linux-image-amd64)' : undefined);
if (skip !== undefined) console.warn(`SKIP: stock kernel smoke test: ${skip}`);

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

describe.skipIf(skip !== undefined)('stock Debian kernel on this VMM', () => {
  const console = new ConsoleWatcher();
  let machine: Machine | undefined;
  afterAll(async () => {
    await machine?.stop();
  });

  it(
    'prints its banner, our e820 map and the ACPI tables it found (RSDP, XSDT, FACP, APIC, DSDT, MCFG)',
    async () => {
      machine = new Machine({
        memory: MEMORY,
        cpus: 1,
        console: console.write,
        boot: { kind: 'linux', kernel: readFileSync(kernel as string), cmdline: 'console=ttyS0 earlyprintk=serial,ttyS0,115200' },
      });
      machine.start();
      await console.waitFor(/ACPI: MCFG [^\n]*\n/, BOOT_BOUND_MS, machine.outcome);
      const out = console.output;
      expect(out).toMatch(/Linux version 6\.\d+\.\d+[^\n]*Debian/);
      for (const e of e820Map(ramBlocks(MEMORY), [{ start: ECAM_START, size: ECAM_SIZE }])) {
        const line = `BIOS-e820: [mem 0x${hex16(e.address)}-0x${hex16(e.address + e.size - 1)}] ${e.type === E820_RAM ? 'usable' : 'reserved'}`;
        expect(out).toContain(line);
      }
      const tables = machine.acpi?.tables ?? [];
      for (const t of tables) {
        const pattern = new RegExp(`ACPI: ${t.signature} 0x0*${t.address.toString(16).toUpperCase()} 0*${t.bytes.length.toString(16).toUpperCase()} \\(v\\d\\d VIRTTS`);
        expect(out, t.signature).toMatch(pattern);
      }
      expect(tables.map((t) => t.signature).sort()).toEqual(['APIC', 'DSDT', 'FACP', 'MCFG', 'RSDP', 'XSDT']);
    },
    BOOT_BOUND_MS + 30_000,
  );
});
