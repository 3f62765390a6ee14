import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackDevice, PciDriverTransport } from '@virtio-ts/driver';
import { GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import { afterAll, describe, expect, it } from 'vitest';
import { PciConfig, PciTransport, VirtioPciCap, formatLspciDump, type PciTransportOptions } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { RamDiskDevice } from './devices/ram-disk.js';

function lspciAvailable(): boolean {
  try {
    execFileSync('lspci', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const haveLspci = lspciAvailable();
if (!haveLspci) console.warn('SKIP: lspci (pciutils) is not installed; the configuration space decode checks did not run');

/** The loopback device with a 64 KiB shared memory window, to show the virtio_pci_cap64 capability. */
class LoopbackWithWindow extends LoopbackDevice {
  readonly sharedMemoryRegions = [{ id: 1, size: 0x10000 }];
}

interface Case {
  readonly name: string;
  readonly slot: string;
  readonly device: () => VirtioDevice;
  readonly options: Omit<PciTransportOptions, 'device' | 'memory'>;
  readonly length: 256 | 4096;
  readonly title: RegExp;
}

const msi = { signal: () => undefined };
const intx = { set: () => undefined };
const cases: readonly Case[] = [
  { name: 'loopback', slot: '00:03.0', device: () => new LoopbackDevice(), options: { msi, intx }, length: 256, title: /Unassigned class \[ff00\]: Red Hat, Inc\. Device 107f \(rev 01\)/ },
  {
    name: 'block, transitional',
    slot: '00:04.0',
    device: () => new RamDiskDevice(),
    options: { msi, intx, transitional: true },
    length: 256,
    title: /SCSI storage controller: Red Hat, Inc\. Virtio block device$/m,
  },
  { name: 'net, PCI Express', slot: '00:05.0', device: () => new NetEchoDevice(), options: { msi, intx, express: true }, length: 4096, title: /Ethernet controller: Red Hat, Inc\. Virtio 1\.0 network device \(rev 01\)/ },
  { name: 'shared memory, INTx only', slot: '00:06.0', device: () => new LoopbackWithWindow(), options: { intx }, length: 256, title: /Red Hat, Inc\. Device 107f/ },
];

/** lspci's names for the virtio structures; 3.9 predates the SharedMemory name, and no version names the PCI access window. */
const CAP_NAMES: Record<number, readonly string[]> = {
  [VirtioPciCap.COMMON_CFG]: ['CommonCfg'],
  [VirtioPciCap.NOTIFY_CFG]: ['Notify'],
  [VirtioPciCap.ISR_CFG]: ['ISR'],
  [VirtioPciCap.DEVICE_CFG]: ['DeviceCfg'],
  [VirtioPciCap.SHARED_MEMORY_CFG]: ['SharedMemory', '<unknown>'],
  [VirtioPciCap.PCI_CFG]: ['<unknown>'],
};

describe.skipIf(!haveLspci)('lspci -F decodes the configuration space (spec 4.1.4)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-lspci-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(cases)('$name', ({ slot, device, options, length, title }) => {
    const memory = GuestMemory.create(1 << 20);
    const fn = new PciTransport({ ...options, device: device(), memory });
    // The driver sizes and places the BARs and enables MSI-X, as a booted guest would. 64-bit BARs go below 4 GiB:
    // in a dump lspci cannot tell the upper half of a 64-bit BAR from a BAR of its own.
    new PciDriverTransport(memory, fn, { memory64Base: 0xd000_0000 });
    fn.configWrite(PciConfig.INTERRUPT_LINE, 1, 11);
    const config = fn.configSpace();
    const file = join(dir, `${slot.replace(/[:.]/g, '-')}.dump`);
    writeFileSync(file, formatLspciDump(slot, config, length));
    const output = execFileSync('lspci', ['-F', file, '-vvv'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

    expect(output).toMatch(title);
    expect(output).toContain('Control: I/O+ Mem+ BusMaster+');
    expect(output).toMatch(/Status: Cap\+/);
    // Every capability lspci lists is one we put there, and every one is decoded.
    const listed = [...output.matchAll(/Capabilities: \[([0-9a-f]+)\] (.*)/g)].map(([, at, text]) => ({ at: parseInt(at as string, 16), text: text as string }));
    const expected = walkCapabilities(config);
    expect(listed.map((c) => c.at)).toEqual(expected);
    for (const { at, text } of listed) {
      const id = config[at] as number;
      if (id === 0x09) {
        const type = config[at + 3] as number;
        const name = /^Vendor Specific Information: VirtIO: (.*)$/.exec(text)?.[1];
        expect(CAP_NAMES[type], `cfg_type ${type} at 0x${at.toString(16)}`).toContain(name);
      } else if (id === 0x11) {
        expect(text).toMatch(/^MSI-X: Enable\+ Count=\d+ Masked-$/);
      } else if (id === 0x01) {
        expect(text).toBe('Power Management version 3');
      } else {
        expect(text).toMatch(/^Express \(v2\) Root Complex Integrated Endpoint/);
      }
    }
    // The structures' places as lspci reads them from the capabilities.
    expect(output).toMatch(/VirtIO: CommonCfg\n\s+BAR=4 offset=00000000 size=00000040/);
    expect(output).toMatch(/VirtIO: Notify\n\s+BAR=4 offset=0000[0-9a-f]{4} size=[0-9a-f]{8} multiplier=00000004/);
    if (options.msi !== undefined) expect(output).toMatch(/Vector table: BAR=1 offset=00000000\n\s+PBA: BAR=1 offset=00001000/);
    if (options.express === true) expect(output).toMatch(/Flags: PMEClk- DSI- D1- D2- AuxCurrent=0mA PME\(D0-,D1-,D2-,D3hot-,D3cold-\)\n\s+Status: D0 NoSoftRst\+/);
    if (options.transitional === true) expect(output).toMatch(/Region 0: I\/O ports at c000$/m);
    expect(output).toContain('Interrupt: pin A routed to IRQ 11');
    // No complaints: bad values, broken BARs, undecodable capabilities.
    expect(output).not.toMatch(/<BAD|<broken|<invalid|<ignored|<unassigned>|Unknown|\[#[0-9a-f]/);
  });
});

/** Offsets of the capabilities on the list, as a driver walks it. */
function walkCapabilities(config: Uint8Array): number[] {
  const offsets: number[] = [];
  for (let at = config[PciConfig.CAPABILITY_LIST] as number; at !== 0 && offsets.length < 48; at = config[at + 1] as number) offsets.push(at);
  return offsets;
}
