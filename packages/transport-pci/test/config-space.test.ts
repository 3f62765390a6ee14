import { LoopbackDevice } from '@virtio-ts/driver';
import { DeviceId } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { CommonCfg, PciBarIndex, PciCommand, PciConfig, PciTransport, pciClassCode, pciDeviceId, type PciBar } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { RamDiskDevice } from './devices/ram-disk.js';
import { bare } from './harness.js';

const bar = (i: number): number => PciConfig.BASE_ADDRESS_0 + 4 * i;

describe('identity (spec 4.1.2)', () => {
  it('spec 4.1.2.1: a modern device has vendor 0x1af4, device 0x1040 + type, revision 1 and a subsystem ID of at least 0x40', () => {
    const { fn } = bare(new NetEchoDevice());
    expect(fn.configRead(PciConfig.VENDOR_ID, 2)).toBe(0x1af4);
    expect(fn.configRead(PciConfig.DEVICE_ID, 2)).toBe(0x1041);
    expect(fn.configRead(PciConfig.REVISION_ID, 1)).toBe(1);
    expect(fn.configRead(PciConfig.SUBSYSTEM_VENDOR_ID, 2)).toBe(0x1af4);
    expect(fn.configRead(PciConfig.SUBSYSTEM_ID, 2)).toBeGreaterThanOrEqual(0x40);
    expect(fn.configRead(PciConfig.CLASS_PROG, 1) | (fn.configRead(0x0a, 2) << 8)).toBe(0x020000);
    expect(fn.configRead(PciConfig.HEADER_TYPE, 1)).toBe(0);
  });

  it('spec 4.1.2.3: a transitional device has the transitional ID, revision 0 and subsystem ID = device type', () => {
    const { fn } = bare(new RamDiskDevice(), { transitional: true });
    expect(fn.configRead(PciConfig.DEVICE_ID, 2)).toBe(0x1001);
    expect(fn.configRead(PciConfig.REVISION_ID, 1)).toBe(0);
    expect(fn.configRead(PciConfig.SUBSYSTEM_ID, 2)).toBe(DeviceId.BLOCK);
  });

  it('spec 4.1.2.1: transitional IDs follow the spec table, not a formula, and exist only for the listed types', () => {
    expect(pciDeviceId(DeviceId.NET, true)).toBe(0x1000);
    expect(pciDeviceId(DeviceId.BALLOON, true)).toBe(0x1002);
    expect(pciDeviceId(DeviceId.CONSOLE, true)).toBe(0x1003);
    expect(pciDeviceId(DeviceId.ENTROPY, true)).toBe(0x1005);
    expect(pciDeviceId(DeviceId.NINEP, true)).toBe(0x1009);
    expect(pciDeviceId(DeviceId.GPU, true)).toBeUndefined();
    expect(pciDeviceId(DeviceId.GPU, false)).toBe(0x1050);
    expect(pciDeviceId(64, false)).toBeUndefined();
    expect(() => new PciTransport({ device: new LoopbackDevice(), memory: bare(new LoopbackDevice()).memory, transitional: true })).toThrow(/no transitional/);
  });

  it('class codes follow QEMU per device type; unknown types are "unassigned class"', () => {
    expect(pciClassCode(DeviceId.BLOCK)).toBe(0x010000);
    expect(pciClassCode(DeviceId.CONSOLE)).toBe(0x078000);
    expect(pciClassCode(DeviceId.GPU)).toBe(0x038000);
    expect(pciClassCode(63)).toBe(0xff0000);
  });
});

describe('configuration space registers ([PCI] 6.1)', () => {
  it('read-only registers keep their value; writable bits of command, cache line and interrupt line take writes', () => {
    const { fn } = bare(new LoopbackDevice());
    const before = fn.configSpace();
    for (const offset of [PciConfig.VENDOR_ID, PciConfig.DEVICE_ID, PciConfig.REVISION_ID, 0x0a, PciConfig.SUBSYSTEM_ID, PciConfig.CAPABILITY_LIST, PciConfig.INTERRUPT_PIN]) {
      fn.configWrite(offset & ~3, 4, 0xffffffff);
    }
    const after = fn.configSpace();
    expect(after[PciConfig.VENDOR_ID]).toBe(before[PciConfig.VENDOR_ID]);
    expect(after.subarray(0, 4)).toEqual(before.subarray(0, 4));
    expect(after.subarray(8, 12)).toEqual(before.subarray(8, 12));
    expect(after.subarray(0x2c, 0x30)).toEqual(before.subarray(0x2c, 0x30));
    expect(after[PciConfig.CAPABILITY_LIST]).toBe(before[PciConfig.CAPABILITY_LIST]);
    expect(after[PciConfig.INTERRUPT_PIN]).toBe(1);
    expect(fn.configRead(PciConfig.INTERRUPT_LINE, 1)).toBe(0xff);
    fn.configWrite(PciConfig.COMMAND, 2, 0xffff);
    expect(fn.configRead(PciConfig.COMMAND, 2)).toBe(PciCommand.IO | PciCommand.MEMORY | PciCommand.MASTER | PciCommand.INTX_DISABLE);
    // Status: the capability list bit is fixed and the error bits are never set.
    expect(fn.configRead(PciConfig.STATUS, 2)).toBe(0x10);
  });

  it('a conventional function has 256 bytes; a PCI Express function 4 KiB, with no extended capabilities', () => {
    expect(bare(new LoopbackDevice()).fn.configRead(0x100, 4)).toBe(0);
    const express = bare(new LoopbackDevice(), { express: true }).fn;
    expect(express.configSpace().length).toBe(4096);
    expect(express.configRead(0x100, 4)).toBe(0);
    expect(express.configRead(0xffc, 4)).toBe(0);
  });

  it('malformed configuration accesses read 0 and are counted, never thrown', () => {
    const { fn } = bare(new LoopbackDevice());
    expect(fn.configRead(1, 2)).toBe(0);
    expect(fn.configRead(0, 3)).toBe(0);
    expect(fn.configRead(4096, 1)).toBe(0);
    expect(fn.configRead(-4, 4)).toBe(0);
    expect(fn.configRead(Number.NaN, 4)).toBe(0);
    fn.configWrite(2, 4, 0);
    fn.configWrite(0.5, 1, 0);
    expect(fn.violations.access).toBe(7);
  });
});

describe('BARs ([PCI] 6.2.5.1)', () => {
  it('before the guest programs them, BAR registers read 0 with their type bits', () => {
    const { fn } = bare(new RamDiskDevice(), { transitional: true });
    expect([0, 1, 2, 3, 4, 5].map((i) => fn.configRead(bar(i), 4))).toEqual([0x1, 0, 0, 0, 0x4, 0]);
  });

  it('sizing: writing all ones reads back the size mask and the type bits; 64-bit BARs size both halves', () => {
    const { fn } = bare(new LoopbackDevice(), { transitional: false });
    const virtio = fn.bars.find((b) => b.purpose === 'virtio') as PciBar;
    expect(virtio).toMatchObject({ index: PciBarIndex.VIRTIO, kind: 'memory64', prefetchable: false });
    fn.configWrite(bar(4), 4, 0xffffffff);
    fn.configWrite(bar(5), 4, 0xffffffff);
    expect(fn.configRead(bar(4), 4)).toBe((~(virtio.size - 1) | 0x4) >>> 0);
    expect(fn.configRead(bar(5), 4)).toBe(0xffffffff);
    const msix = fn.bars.find((b) => b.purpose === 'msix') as PciBar;
    fn.configWrite(bar(1), 4, 0xffffffff);
    expect(fn.configRead(bar(1), 4)).toBe((~(msix.size - 1) & ~0xf) >>> 0);
    // Unimplemented BARs read 0 whatever is written.
    fn.configWrite(bar(0), 4, 0xffffffff);
    fn.configWrite(bar(3), 4, 0xffffffff);
    expect(fn.configRead(bar(0), 4)).toBe(0);
    expect(fn.configRead(bar(3), 4)).toBe(0);
  });

  it('sizing an I/O BAR: the legacy interface is a 32-byte I/O BAR 0 with bit 0 set', () => {
    const { fn } = bare(new RamDiskDevice(), { transitional: true });
    fn.configWrite(bar(0), 4, 0xffffffff);
    expect(fn.configRead(bar(0), 4)).toBe(0xffffffe1);
    expect(fn.bars[0]).toMatchObject({ index: 0, kind: 'io', size: 32, purpose: 'legacy' });
  });

  it('a 64-bit BAR takes an address above 4 GiB; byte and word writes merge into the register', () => {
    const { fn } = bare(new LoopbackDevice());
    const size = (fn.bars.find((b) => b.index === 4) as PciBar).size;
    fn.configWrite(bar(4), 4, 0x1234_5678);
    fn.configWrite(bar(5), 2, 0x0040);
    fn.configWrite(bar(5) + 2, 1, 0x01);
    // Address bits below the size are hard-wired to zero; bit 2 says 64-bit.
    expect(fn.configRead(bar(4), 4)).toBe(((0x1234_5678 & ~(size - 1)) | 0x4) >>> 0);
    expect(fn.configRead(bar(5), 4)).toBe(0x0001_0040);
  });

  it('the function decodes a BAR only while its address space is enabled; listeners hear every change', () => {
    const { fn } = bare(new LoopbackDevice());
    const changes: [number, number | undefined, number | undefined][] = [];
    fn.onBarChange((b, previous) => changes.push([b.index, previous, b.address]));
    fn.configWrite(bar(4), 4, 0);
    fn.configWrite(bar(5), 4, 0x10);
    expect(changes).toEqual([]);
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY);
    expect(changes).toEqual([[4, undefined, 0x10_0000_0000]]);
    expect(fn.bars.find((b) => b.index === 4)?.address).toBe(0x10_0000_0000);
    // Moving the BAR while decoding remaps it; turning decoding off (as Linux does before sizing) unmaps it.
    fn.configWrite(bar(5), 4, 0x20);
    fn.configWrite(PciConfig.COMMAND, 2, 0);
    fn.configWrite(bar(4), 4, 0xffffffff);
    fn.configWrite(bar(5), 4, 0xffffffff);
    expect(changes).toEqual([
      [4, undefined, 0x10_0000_0000],
      [4, 0x10_0000_0000, 0x20_0000_0000],
      [4, 0x20_0000_0000, undefined],
    ]);
  });

  it('memory decoding off: BAR accesses are ignored, reads give all ones, and nothing reaches the device', () => {
    const { fn } = bare(new LoopbackDevice());
    fn.configWrite(bar(4), 4, 0);
    fn.configWrite(bar(5), 4, 0x10);
    const address = 0x10_0000_0000;
    expect(fn.mmioRead(address + CommonCfg.NUM_QUEUES, 2)).toBeUndefined();
    expect(fn.barRead(PciBarIndex.VIRTIO, CommonCfg.NUM_QUEUES, 2)).toBe(0xffff);
    fn.barWrite(PciBarIndex.VIRTIO, CommonCfg.DEVICE_STATUS, 1, 1);
    expect(fn.core.status).toBe(0);
    expect(fn.violations.access).toBe(2);
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY);
    expect(fn.mmioRead(address + CommonCfg.NUM_QUEUES, 2)).toBe(1);
    expect(fn.mmioWrite(address + CommonCfg.DEVICE_STATUS, 1, 1)).toBe(true);
    expect(fn.core.status).toBe(1);
    // Addresses outside every BAR are not this function's.
    expect(fn.mmioWrite(address - 4, 4, 0)).toBe(false);
    expect(fn.ioRead(0xc000, 1)).toBeUndefined();
  });

  it('I/O decoding follows the I/O enable bit and the port range', () => {
    const { fn } = bare(new RamDiskDevice(), { transitional: true });
    fn.configWrite(bar(0), 4, 0xc040);
    expect(fn.ioRead(0xc040 + 18, 1)).toBeUndefined();
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.IO);
    expect(fn.ioRead(0xc040 + 12, 2)).toBe(128);
    expect(fn.legacyNotifyPort()).toBe(0xc050);
    // A port BAR above 64 KiB cannot be decoded on these platforms.
    fn.configWrite(bar(0), 4, 0x10000);
    expect(fn.bars[0]?.address).toBeUndefined();
  });

  it('PCI reset returns every register to its power-on value and unmaps the BARs', () => {
    const { fn } = bare(new LoopbackDevice());
    const powerOn = fn.configSpace();
    const unmapped: number[] = [];
    fn.configWrite(bar(4), 4, 0x8000_0000);
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
    fn.configWrite(PciConfig.INTERRUPT_LINE, 1, 5);
    fn.barWrite(PciBarIndex.VIRTIO, CommonCfg.DEVICE_STATUS, 1, 1);
    fn.onBarChange((b) => b.address === undefined && unmapped.push(b.index));
    fn.reset();
    expect(fn.configSpace()).toEqual(powerOn);
    expect(unmapped).toEqual([4]);
    expect(fn.core.status).toBe(0);
  });
});

describe('construction refuses what cannot be a PCI function', () => {
  const memory = bare(new LoopbackDevice()).memory;
  it.each([
    [{ notifyOffMultiplier: 3 }, /notifyOffMultiplier/],
    [{ notifyOffMultiplier: 2 }, /notifyOffMultiplier/],
    [{ msixVectors: 4 }, /msi sink/],
    [{ msixVectors: 4096, msi: { signal: () => undefined } }, /vector count/],
    [{ subsystemId: 0x10 }, /subsystemId/],
  ])('%o', (options, message) => {
    expect(() => new PciTransport({ device: new LoopbackDevice(), memory, ...options })).toThrow(message);
  });

  it('a transitional device needs power-of-two queue sizes, since legacy drivers cannot choose one', () => {
    const device = Object.assign(new RamDiskDevice(), { queueMaxSizes: [100] });
    expect(() => new PciTransport({ device, memory, transitional: true })).toThrow(/power-of-two/);
  });
});
