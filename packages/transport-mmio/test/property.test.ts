import {
  DeviceStatus,
  GuestMemory,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
  queueConfigProblem,
  type DriverViolations,
} from '@virtio-ts/virtqueue';
import { LoopbackDevice } from '@virtio-ts/driver';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER, MMIO_MAGIC_VALUE, MmioRegister as Reg, MmioTransport, type MmioVersion, type MmioViolations } from '../src/index.js';
import { BASE, IRQ } from './harness.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET } = DeviceStatus;

/** Where the handshake places queue 0 (16 entries): inside guest RAM, so random writes there make corrupt rings. */
const RING = { desc: 0x1000, driver: 0x1100, device: 0x1200 };

type Op =
  | { readonly kind: 'read'; readonly offset: number; readonly size: number }
  | { readonly kind: 'write'; readonly offset: number; readonly size: number; readonly value: number }
  /**
   * The driver's initialisation sequence, so that random accesses also hit running queues. Feature pages: -1 takes
   * what the device offers, -2 that without RING_PACKED, anything else is written as it is.
   */
  | { readonly kind: 'handshake'; readonly featuresLow: number; readonly featuresHigh: number; readonly queueSize: number }
  /** A descriptor put on the split ring as a driver would (or over a packed ring, as garbage), then QueueNotify. */
  | { readonly kind: 'kick'; readonly head: number; readonly flags: number; readonly len: number; readonly next: number }
  /** Random bytes over the ring areas. */
  | { readonly kind: 'scribble'; readonly offset: number; readonly bytes: Uint8Array };

const registerOffsets = Object.values(Reg).filter((offset) => offset < Reg.Config);
const offsetArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...registerOffsets) },
  { weight: 2, arbitrary: fc.integer({ min: Reg.Config, max: Reg.Config + 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: -8, max: 0x220 }) },
);
const sizeArb = fc.oneof({ weight: 8, arbitrary: fc.constant(4) }, { weight: 2, arbitrary: fc.constantFrom(0, 1, 2, 3, 8) });
const valueArb = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 7, 8, 11, 15, 16, 0x40, 0x80, 0xff, 0x100, 0x1000, 0x1200, 0x1400, 0x10000, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('read' as const), offset: offsetArb, size: sizeArb }) },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('write' as const), offset: offsetArb, size: sizeArb, value: valueArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('handshake' as const),
      featuresLow: fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) }),
      featuresHigh: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(-1, -2) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) }),
      queueSize: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(16, 8) }, { weight: 1, arbitrary: fc.constantFrom(12, 0, 17, 512) }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('kick' as const),
      head: fc.integer({ min: 0, max: 17 }),
      flags: fc.constantFrom(0, 1, 2, 4, 3),
      len: fc.constantFrom(0, 8, 64, 0xffffffff),
      next: fc.integer({ min: 0, max: 17 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('scribble' as const), offset: fc.integer({ min: 0, max: 0x5ff }), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
);

class Model {
  /** 64 KiB, a hole, 64 KiB: small, so that random addresses land inside and outside it. */
  readonly memory = new GuestMemory([
    { guestAddress: 0, buffer: new ArrayBuffer(0x10000) },
    { guestAddress: 0x20000, buffer: new ArrayBuffer(0x10000) },
  ]);
  readonly device = new LoopbackDevice({
    queueSize: 16,
    features: featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET),
  });
  readonly levels: boolean[] = [];
  readonly transport: MmioTransport;
  availIdx = 0;
  /** The queue the driver last selected: the invariant check selects every queue, then this one again. */
  queueSel = 0;

  constructor(readonly version: MmioVersion) {
    this.transport = new MmioTransport({ device: this.device, memory: this.memory, baseAddress: BASE, irq: { number: IRQ, set: (level) => this.levels.push(level) }, version });
  }

  run(op: Op): void {
    const t = this.transport;
    switch (op.kind) {
      case 'read':
        t.read(op.offset, op.size);
        break;
      case 'write':
        t.write(op.offset, op.size, op.value);
        if (op.offset === Reg.QueueSel && op.size === 4) this.queueSel = op.value;
        break;
      case 'handshake':
        this.handshake(op.featuresLow, op.featuresHigh, op.queueSize);
        break;
      case 'kick': {
        const desc = RING.desc + 16 * (op.head % 16);
        this.memory.setU64(desc, 0x8000n);
        this.memory.setU32(desc + 8, op.len);
        this.memory.setU16(desc + 12, op.flags);
        this.memory.setU16(desc + 14, op.next);
        this.memory.setU16(RING.driver + 4 + 2 * (this.availIdx % 16), op.head);
        this.availIdx = (this.availIdx + 1) & 0xffff;
        this.memory.setU16(RING.driver + 2, this.availIdx);
        t.write(Reg.QueueNotify, 4, 0);
        break;
      }
      case 'scribble':
        this.memory.write(RING.desc + op.offset, op.bytes);
        break;
    }
  }

  private handshake(featuresLow: number, featuresHigh: number, queueSize: number): void {
    const w = (offset: number, value: number): void => this.transport.write(offset, 4, value);
    const offered = (page: number): number => (w(Reg.DeviceFeaturesSel, page), this.transport.read(Reg.DeviceFeatures, 4));
    const low = featuresLow < 0 ? offered(0) : featuresLow;
    const packedBit = Number(featureBit(VIRTIO_F_RING_PACKED) >> 32n);
    const high = featuresHigh === -1 ? offered(1) : featuresHigh === -2 ? offered(1) & ~packedBit : featuresHigh;
    if (this.version === 1) w(Reg.GuestPageSize, 0x1000);
    w(Reg.Status, 0);
    this.availIdx = 0;
    this.memory.fill(RING.desc, 0x600);
    w(Reg.Status, ACKNOWLEDGE);
    w(Reg.Status, ACKNOWLEDGE | DRIVER);
    w(Reg.DriverFeaturesSel, 0);
    w(Reg.DriverFeatures, low);
    w(Reg.DriverFeaturesSel, 1);
    w(Reg.DriverFeatures, high);
    if (this.version === 2) w(Reg.Status, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    w(Reg.QueueSel, 0);
    this.queueSel = 0;
    w(Reg.QueueSize, queueSize);
    if (this.version === 1) {
      w(Reg.QueueAlign, 0x200);
      w(Reg.QueuePFN, 1);
    } else {
      w(Reg.QueueDescLow, RING.desc);
      w(Reg.QueueDriverLow, RING.driver);
      w(Reg.QueueDeviceLow, RING.device);
      w(Reg.QueueReady, 1);
    }
    w(Reg.Status, this.transport.read(Reg.Status, 4) | DRIVER_OK);
  }
}

function violationTotal(core: DriverViolations, mmio: MmioViolations): number {
  return Object.values(core).reduce((a, b) => a + b, 0) + Object.values(mmio).reduce((a, b) => a + b, 0);
}

/**
 * Everything the spec and the transport's own contract require, checked through
 * registers where they show it. Returns the first broken rule, or undefined.
 */
function brokenInvariant(model: Model, before: { status: number; violations: number }, op: Op): string | undefined {
  const t = model.transport;
  const core = t.core;
  if (t.read(Reg.MagicValue, 4) !== MMIO_MAGIC_VALUE || t.read(Reg.Version, 4) !== model.version) return 'MagicValue or Version changed';
  if (t.read(Reg.DeviceID, 4) !== model.device.deviceType) return 'DeviceID changed';

  // Spec 4.2.3.4: the line is asserted exactly while InterruptStatus is non-zero; only defined bits are ever set (4.2.2.1).
  const interruptStatus = t.read(Reg.InterruptStatus, 4);
  if ((interruptStatus & ~(INTERRUPT_USED_BUFFER | INTERRUPT_CONFIG_CHANGE)) !== 0) return `undefined InterruptStatus bits 0x${interruptStatus.toString(16)}`;
  if (t.interruptLevel !== (interruptStatus !== 0) || (model.levels.at(-1) ?? false) !== t.interruptLevel) return 'line does not follow InterruptStatus';
  if (model.levels.some((level, i) => level === (model.levels[i - 1] ?? false))) return 'line driven to the level it already had';

  // The status field: the initialisation order holds, and FEATURES_OK only with features the device offered (spec 2.2.2, 3.1).
  const status = t.read(Reg.Status, 4);
  if (status !== core.status) return 'Status register differs from the status machine';
  if ((status & FEATURES_OK) !== 0) {
    if (model.version === 1) return 'FEATURES_OK on a legacy device';
    if ((core.driverFeatures & ~core.offeredFeatures) !== 0n) return 'FEATURES_OK with unoffered features';
    if (!hasFeature(core.driverFeatures, VIRTIO_F_VERSION_1)) return 'FEATURES_OK without VERSION_1';
  }
  if ((status & DRIVER_OK) !== 0) {
    if ((status & (ACKNOWLEDGE | DRIVER)) !== (ACKNOWLEDGE | DRIVER)) return 'DRIVER_OK without ACKNOWLEDGE and DRIVER';
    if (model.version === 2 && (status & FEATURES_OK) === 0) return 'DRIVER_OK without FEATURES_OK';
  }
  // DEVICE_NEEDS_RESET stays until the driver resets the device (spec 2.1.2).
  const resetWrite = op.kind === 'handshake' || (op.kind === 'write' && op.offset === Reg.Status && op.size === 4 && op.value === 0);
  if ((before.status & DEVICE_NEEDS_RESET) !== 0 && !resetWrite && (status & DEVICE_NEEDS_RESET) === 0) return 'DEVICE_NEEDS_RESET cleared without a reset';
  if (status === 0 && interruptStatus !== 0) return 'InterruptStatus survived a reset';

  // A queue reads as ready (QueueReady / QueuePFN) only with a configuration the device can use.
  const packed = hasFeature(core.driverFeatures, VIRTIO_F_RING_PACKED);
  for (let index = 0; index <= core.queueCount; index++) {
    t.write(Reg.QueueSel, 4, index);
    const ready = t.read(model.version === 2 ? Reg.QueueReady : Reg.QueuePFN, 4) !== 0;
    const slot = core.queueSlot(index);
    // A queue whose reset is still finishing reads as in use too (spec 4.2.2.1).
    if (ready !== ((slot?.enabled ?? false) || core.queueResetPending(index))) return `queue ${index}: ready register differs from the status machine`;
    if (slot?.enabled === true) {
      if (slot.size > slot.maxSize) return `queue ${index}: ready with size ${slot.size} above ${slot.maxSize}`;
      const problem = queueConfigProblem(model.memory, slot, packed);
      if (problem !== undefined) return `queue ${index}: ready with ${problem}`;
    }
  }
  t.write(Reg.QueueSel, 4, model.queueSel);
  if (violationTotal(core.violations, t.violations) < before.violations) return 'a violation counter went down';
  return undefined;
}

describe.each([1, 2] as const)('random register access sequences (version %i)', (version) => {
  it('never throw and never leave the device in a state the spec forbids', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60, size: 'max' }), (ops) => {
        const model = new Model(version);
        for (const op of ops) {
          const before = { status: model.transport.core.status, violations: violationTotal(model.transport.core.violations, model.transport.violations) };
          model.run(op);
          const broken = brokenInvariant(model, before, op);
          if (broken !== undefined) throw new Error(`after ${JSON.stringify(op)}: ${broken}`);
        }
      }),
      { numRuns: 300 },
    );
    // A guard against a hang, not a performance check: a loaded 2-core machine runs this ten times slower than an idle one.
  }, 120_000);
});
