import { describe, expect, it } from 'vitest';
import { HostBridge } from './host-bridge.js';
import { PciRoot, type PciFunction } from './pci-root.js';

function u32(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
}

describe('PCI root complex', () => {
  const root = new PciRoot();
  root.attach(0, new HostBridge());
  const writes: [number, number[]][] = [];
  const fn: PciFunction = {
    configRead: (offset, data) => data.fill(offset & 0xff),
    configWrite: (offset, data) => writes.push([offset, [...data]]),
  };
  root.attach(3, fn);

  const cf8 = (value: number): void => {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, value, true);
    root.ioPorts.write(0, d);
  };

  it('reads the host bridge through 0xCF8/0xCFC and ECAM alike', () => {
    cf8(0x8000_0000);
    const viaPorts = new Uint8Array(4);
    root.ioPorts.read(4, viaPorts);
    const viaEcam = new Uint8Array(4);
    root.ecam.read(0, viaEcam);
    expect(u32(viaPorts)).toBe(0x0008_1b36);
    expect(u32(viaEcam)).toBe(0x0008_1b36);
  });

  it('routes byte and word accesses within the data window to the right register', () => {
    cf8(0x8000_0000 | (3 << 11) | 0x40);
    const b = new Uint8Array(1);
    root.ioPorts.read(4 + 2, b);
    expect(b[0]).toBe(0x42);
    root.ioPorts.write(4 + 1, Uint8Array.of(7));
    expect(writes.at(-1)).toEqual([0x41, [7]]);
    const w = new Uint8Array(2);
    root.ecam.read((3 << 15) | 0x122, w);
    expect([...w]).toEqual([0x22, 0x22]);
  });

  it('reads all ones for absent functions, other buses, disabled addresses and misaligned accesses', () => {
    const d = new Uint8Array(4);
    for (const address of [0x8000_0000 | (1 << 11), 0x8001_0000, 0x0000_0000, 0x8000_0000 | (3 << 11) | (1 << 8)]) {
      cf8(address);
      root.ioPorts.read(4, d);
      expect(u32(d)).toBe(0xffff_ffff);
    }
    const mis = new Uint8Array(2);
    root.ecam.read((3 << 15) | 0x41, mis);
    expect([...mis]).toEqual([0xff, 0xff]);
    const before = writes.length;
    root.ecam.write((3 << 15) | 0x41, Uint8Array.of(1, 2));
    expect(writes.length).toBe(before);
  });

  it('refuses a taken slot or a device number past 31', () => {
    expect(() => root.attach(3, fn)).toThrow(/taken/);
    expect(() => root.attach(32, fn)).toThrow(RangeError);
    expect(root.freeSlot()).toBe(1);
  });
});
