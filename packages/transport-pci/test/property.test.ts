import { LoopbackDevice, VirtioDriver } from '@virtio-ts/driver';
import { DeviceStatus, VIRTIO_F_RING_PACKED, hasFeature, type VirtioDevice } from '@virtio-ts/virtqueue';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CommonCfg, LegacyIo, Msix, PciBarIndex, PciCommand, PciConfig, type PciTransport } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { RamDiskDevice } from './devices/ram-disk.js';
import { wire } from './harness.js';

/** Offsets worth hitting: every register start in the structures, their neighbours, and the edges of each region. */
const CONFIG_OFFSETS = [0x00, 0x04, 0x06, 0x0c, 0x10, 0x14, 0x18, 0x1c, 0x20, 0x24, 0x30, 0x34, 0x3c, 0x3d, 0x40, 0x50, 0x64, 0x74, 0x84, 0x88, 0x8c, 0x90, 0x94, 0x98, 0x9a, 0x9c, 0xa0, 0xa4, 0xac, 0xfc, 0x100, 0xffc];
const COMMON_OFFSETS = Object.values(CommonCfg).filter((v) => v < CommonCfg.SIZE);
const VIRTIO_OFFSETS = [...COMMON_OFFSETS, 0x40, 0xffe, 0x1000, 0x1001, 0x1004, 0x2000, 0x2002, 0x2004, 0x2007, 0x2008, 0x3000, 0x3002, 0x3004, 0x3006, 0x3ffc];
const MSIX_OFFSETS = [0, 4, 8, 12, 16, 20, 24, 28, 32, 44, 0x1000, 0x1004, 0x1ffc];
const LEGACY_OFFSETS = [...Object.values(LegacyIo), 24, 25, 28, 31];

const size = fc.constantFrom(1, 2, 4, 1, 2, 4, 3, 8, 0, -1);
const value = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 8, 0xf, 0xff, 0xffff, 0x8000, 0xffffffff, 0xfee0_0000, 0x100, 0x10), fc.integer({ min: 0, max: 0xffffffff }), fc.double());
const near = (offsets: readonly number[]): fc.Arbitrary<number> =>
  fc.oneof(fc.constantFrom(...offsets), fc.tuple(fc.constantFrom(...offsets), fc.integer({ min: -3, max: 3 })).map(([o, d]) => o + d), fc.integer({ min: -8, max: 0x5000 }));

type Step =
  | { kind: 'configRead'; offset: number; size: number }
  | { kind: 'configWrite'; offset: number; size: number; value: number }
  | { kind: 'barRead'; bar: number; offset: number; size: number }
  | { kind: 'barWrite'; bar: number; offset: number; size: number; value: number }
  | { kind: 'notify'; index: number; data: number | undefined }
  | { kind: 'configChanged' }
  | { kind: 'reset' };

const barOffset = (bar: number): fc.Arbitrary<number> =>
  near(bar === PciBarIndex.VIRTIO ? VIRTIO_OFFSETS : bar === PciBarIndex.MSIX ? MSIX_OFFSETS : bar === PciBarIndex.LEGACY ? LEGACY_OFFSETS : [0]);

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('configRead' as const), offset: near(CONFIG_OFFSETS), size }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('configWrite' as const), offset: near(CONFIG_OFFSETS), size, value }) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(0, 1, 2, 4, 5, 6).chain((bar) => fc.record({ kind: fc.constant('barRead' as const), bar: fc.constant(bar), offset: barOffset(bar), size })),
  },
  {
    weight: 10,
    arbitrary: fc.constantFrom(0, 1, 2, 4, 5, 6).chain((bar) => fc.record({ kind: fc.constant('barWrite' as const), bar: fc.constant(bar), offset: barOffset(bar), size, value })),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('notify' as const), index: fc.integer({ min: -1, max: 3 }), data: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'configChanged' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset' as const }) },
);

const devices: Record<string, () => VirtioDevice> = {
  loopback: () => new LoopbackDevice({ queueSize: 16 }),
  net: () => new NetEchoDevice(),
  disk: () => new RamDiskDevice(),
};

function apply(fn: PciTransport, s: Step): void {
  switch (s.kind) {
    case 'configRead':
      fn.configRead(s.offset, s.size);
      return;
    case 'configWrite':
      fn.configWrite(s.offset, s.size, s.value);
      return;
    case 'barRead':
      fn.barRead(s.bar, s.offset, s.size);
      return;
    case 'barWrite':
      fn.barWrite(s.bar, s.offset, s.size, s.value);
      return;
    case 'notify':
      fn.notify(s.index, s.data);
      return;
    case 'configChanged':
      fn.core.configChanged();
      return;
    case 'reset':
      fn.reset();
      return;
  }
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/** What the spec and [PCI] never allow, checked after every step. */
function checkInvariants(fn: PciTransport, identity: Uint8Array, intxLevel: boolean, msixCap: number): void {
  const config = fn.configSpace();
  // Identity, class, header type and the capability pointer are read-only.
  expect(config.subarray(0, 4)).toEqual(identity.subarray(0, 4));
  expect(config.subarray(8, 12)).toEqual(identity.subarray(8, 12));
  expect(config[PciConfig.HEADER_TYPE]).toBe(identity[PciConfig.HEADER_TYPE]);
  expect(config[PciConfig.CAPABILITY_LIST]).toBe(identity[PciConfig.CAPABILITY_LIST]);
  const view = new DataView(config.buffer);
  const command = view.getUint16(PciConfig.COMMAND, true);
  expect(command & ~(PciCommand.IO | PciCommand.MEMORY | PciCommand.MASTER | PciCommand.INTX_DISABLE)).toBe(0);
  // BARs: type bits fixed, address bits below the size zero.
  for (const bar of fn.bars) {
    const low = view.getUint32(PciConfig.BASE_ADDRESS_0 + 4 * bar.index, true);
    const typeBits = bar.kind === 'io' ? 0x3 : 0xf;
    expect(low & typeBits).toBe(bar.kind === 'io' ? 1 : (bar.kind === 'memory64' ? 4 : 0) | (bar.prefetchable ? 8 : 0));
    expect(low & (bar.size - 1) & ~typeBits).toBe(0);
    if (bar.address !== undefined) expect(bar.address % bar.size).toBe(0);
  }
  // Device status: DRIVER_OK only after FEATURES_OK on a modern interface (spec 3.1.1).
  const status = fn.core.status;
  if ((status & DeviceStatus.DRIVER_OK) !== 0 && !fn.core.legacy) expect(status & DeviceStatus.FEATURES_OK).toBe(DeviceStatus.FEATURES_OK);
  // spec 4.1.4.3.1: queue_size is 0 or a power of two unless the packed layout was negotiated.
  const packed = (status & DeviceStatus.FEATURES_OK) !== 0 && hasFeature(fn.core.driverFeatures, VIRTIO_F_RING_PACKED);
  for (let q = 0; q < fn.core.queueCount; q++) {
    const slot = fn.core.queueSlot(q);
    if (slot === undefined) continue;
    expect(slot.size).toBeGreaterThanOrEqual(1);
    expect(slot.size).toBeLessThanOrEqual(slot.maxSize);
    if (!packed) expect(isPowerOfTwo(slot.size)).toBe(true);
  }
  // INTx is asserted only while MSI-X is off and Interrupt Disable is clear, and Interrupt Status says so.
  if (intxLevel) {
    expect(command & PciCommand.INTX_DISABLE).toBe(0);
    expect(view.getUint16(msixCap + Msix.FLAGS, true) & Msix.FLAGS_ENABLE).toBe(0);
    expect(view.getUint16(PciConfig.STATUS, true) & 0x8).toBe(0x8);
  }
}

describe('random register access sequences (fast-check)', () => {
  it.each(Object.keys(devices))('%s: never throw, and never reach a state the spec forbids', async (name) => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), fc.array(step, { minLength: 1, maxLength: 120 }), async (initialised, transitional, steps) => {
        const device = (devices[name] as () => VirtioDevice)();
        const useTransitional = transitional && name !== 'loopback';
        const wired = wire(device, { transitional: useTransitional, express: !transitional });
        const { fn } = wired;
        let msixCap = 0;
        for (let at = fn.configRead(PciConfig.CAPABILITY_LIST, 1); at !== 0; at = fn.configRead(at + 1, 1)) if (fn.configRead(at, 1) === 0x11) msixCap = at;
        let intxLevel = false;
        const sent = wired.messages.length;
        // Sinks see only what they may: MSI messages need MSI-X on, unmasked, and bus mastering.
        const checkMessage = (): void => {
          const config = new DataView(fn.configSpace().buffer);
          const flags = config.getUint16(msixCap + Msix.FLAGS, true);
          expect(flags & (Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL)).toBe(Msix.FLAGS_ENABLE);
          expect(config.getUint16(PciConfig.COMMAND, true) & PciCommand.MASTER).toBe(PciCommand.MASTER);
          expect(intxLevel).toBe(false);
        };
        if (initialised) await new VirtioDriver(wired.driver).init({ queueSize: 8 });
        wired.messages.length = sent;
        wired.routing.toDriver = false;
        const identity = fn.configSpace();
        const before = { ...fn.violations };
        for (const s of steps) {
          const messages = wired.messages.length;
          const lines = wired.intx.length;
          expect(() => apply(fn, s)).not.toThrow();
          for (let i = lines; i < wired.intx.length; i++) intxLevel = wired.intx[i] as boolean;
          if (wired.messages.length > messages) checkMessage();
          checkInvariants(fn, identity, intxLevel, msixCap);
        }
        expect(fn.violations.access).toBeGreaterThanOrEqual(before.access);
      }),
      { numRuns: 100 },
    );
  });
});
