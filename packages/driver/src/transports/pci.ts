import { legacySplitRingLayout, type GuestMemory, type QueueConfig } from '@virtio-ts/virtqueue';
import { andThen, pollUntil } from '../poll.js';
import type { DriverTransport, InterruptCause } from '../transport.js';

/**
 * What a guest can do to a PCI function: configuration space accesses through
 * the host bridge, and memory and I/O accesses that the function's BARs
 * decode. `@virtio-ts/transport-pci`'s PciTransport has this shape; the driver
 * depends on the shape only.
 */
export interface PciFunctionAccess {
  /** Configuration space read (1, 2 or 4 bytes). */
  configRead(offset: number, size: number): number;
  /** Configuration space write. */
  configWrite(offset: number, size: number, value: number): void;
  /** Memory read at a guest-physical address; undefined if the function does not decode it. */
  mmioRead(address: number, size: number): number | undefined;
  /** Memory write; false if the function does not decode the address. */
  mmioWrite(address: number, size: number, value: number): boolean;
  /** I/O port read; undefined if the function does not decode the port. */
  ioRead(port: number, size: number): number | undefined;
  /** I/O port write; false if the function does not decode the port. */
  ioWrite(port: number, size: number, value: number): boolean;
  /**
   * After a write, a promise while the vCPU that made it stays held: the
   * function is finishing work the guest expects done when the write returns
   * (a reset through the legacy interface, which Linux's virtio_pci_legacy does
   * not poll for). `@virtio-ts/transport-pci`'s PciTransport reports it; a
   * function without it finishes every write before returning.
   */
  readonly pendingCompletion?: Promise<void> | undefined;
}

/** Options for the PCI driver backends. */
export interface PciDriverOptions {
  /** Interrupt mechanism. Defaults to MSI-X when the function has the capability, else INTx. */
  readonly interrupts?: 'msix' | 'intx';
  /**
   * How to reach the virtio structures: through their BARs (the default), or
   * through the VIRTIO_PCI_CAP_PCI_CFG window in configuration space (spec 4.1.4.9).
   */
  readonly access?: 'bar' | 'pci-cfg';
  /** MSI-X vectors to use at most (Linux falls back to fewer when the table is small). */
  readonly maxVectors?: number;
  /** Where 32-bit memory BARs are placed. Default 0xe000_0000. */
  readonly memory32Base?: number;
  /** Where 64-bit memory BARs are placed. Default 0x80_0000_0000 (512 GiB). */
  readonly memory64Base?: number;
  /** Where I/O BARs are placed. Default 0xc000. */
  readonly ioBase?: number;
  /** The MSI address the driver programs (an x86 local APIC message address). Default 0xfee0_0000. */
  readonly msiAddress?: number;
}

/*
 * The PCI configuration offsets ([PCI] 6.1) and the virtio structure layouts
 * (spec 4.1.4) are written out here from the specifications rather than
 * imported from @virtio-ts/transport-pci, on purpose: the driver is an
 * independent implementation of the other side, so a wrong offset on either
 * side fails the tests instead of agreeing with itself (and the driver needs
 * no dependency on the transport). They are not in @virtio-ts/virtqueue's
 * constants either: they are one transport's register map, not the device model.
 */
const VENDOR_ID = 0x1af4;
const COMMAND = 0x04;
const STATUS = 0x06;
const REVISION = 0x08;
const CAPABILITY_LIST = 0x34;
const BAR0 = 0x10;
const CMD_IO = 0x1;
const CMD_MEMORY = 0x2;
const CMD_MASTER = 0x4;
const CMD_INTX_DISABLE = 0x400;
const STATUS_CAP_LIST = 0x10;
const CAP_VENDOR = 0x09;
const CAP_MSIX = 0x11;
const MSIX_ENABLE = 0x8000;
const MSIX_MASKALL = 0x4000;
const NO_VECTOR = 0xffff;
const TWO_32 = 0x1_0000_0000;
/** Legacy queue addresses are 4096-byte page frame numbers, and the used ring is aligned to 4096 (spec 4.1.5.1.3.1). */
const LEGACY_QUEUE_ALIGN = 4096;

/** virtio_pci_cap.cfg_type values (spec 4.1.4). */
const CapType = { COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4, PCI_CFG: 5 } as const;

/** struct virtio_pci_common_cfg offsets (spec 4.1.4.3). */
const Common = {
  DFSELECT: 0,
  DF: 4,
  GFSELECT: 8,
  GF: 12,
  MSIX: 16,
  NUMQ: 18,
  STATUS: 20,
  GENERATION: 21,
  Q_SELECT: 22,
  Q_SIZE: 24,
  Q_MSIX: 26,
  Q_ENABLE: 28,
  Q_NOFF: 30,
  Q_DESCLO: 32,
  Q_DESCHI: 36,
  Q_AVAILLO: 40,
  Q_AVAILHI: 44,
  Q_USEDLO: 48,
  Q_USEDHI: 52,
  Q_RESET: 58,
} as const;

/** Legacy I/O header offsets (spec 4.1.4.10). */
const Legacy = {
  HOST_FEATURES: 0,
  GUEST_FEATURES: 4,
  QUEUE_PFN: 8,
  QUEUE_NUM: 12,
  QUEUE_SEL: 14,
  QUEUE_NOTIFY: 16,
  STATUS: 18,
  ISR: 19,
  CONFIG_VECTOR: 20,
  QUEUE_VECTOR: 22,
} as const;

/** A BAR as the driver assigned it. */
interface AssignedBar {
  readonly io: boolean;
  readonly address: number;
  readonly size: number;
}

/** A virtio structure: where it is, and how long. */
interface Structure {
  readonly bar: number;
  readonly offset: number;
  readonly length: number;
}

/** The first virtio capability of each type, and the notify multiplier. */
interface VirtioCaps {
  readonly common: Structure | undefined;
  readonly notify: Structure | undefined;
  readonly isr: Structure | undefined;
  readonly device: Structure | undefined;
  readonly pciCfg: number | undefined;
  readonly notifyOffMultiplier: number;
  readonly msix: number | undefined;
}

/**
 * What both PCI backends share: enumeration (vendor and device ID, the
 * capability list), BAR sizing and assignment, enabling decoding and bus
 * mastering, and interrupts: MSI-X with a table entry per vector and messages
 * routed back to queues and configuration changes, or INTx with the ISR status.
 */
abstract class PciDriverBase {
  /** Guest memory, as the driver sees it. */
  readonly memory: GuestMemory;
  /** The function under test. */
  readonly fn: PciFunctionAccess;
  /** BARs as assigned, by number. */
  readonly bars: (AssignedBar | undefined)[] = [];
  /** MSI messages to an address or with data the driver never programmed. */
  spurious = 0;
  /** Vector of configuration changes, when MSI-X is in use. */
  protected configVector = NO_VECTOR;
  /** Vector each queue is mapped to. */
  protected readonly queueVectors = new Map<number, number>();
  /** MSI-X vectors in use (0: INTx). */
  protected vectorsInUse = 0;
  /** Vectors for one per queue plus configuration changes, counted when MSI-X was set up. */
  private vectorsNeeded = 0;
  protected readonly caps: VirtioCaps;
  private readonly msiAddress: number;
  private handler: (cause: InterruptCause) => void = () => undefined;

  protected constructor(memory: GuestMemory, fn: PciFunctionAccess, options: PciDriverOptions) {
    this.memory = memory;
    this.fn = fn;
    this.msiAddress = options.msiAddress ?? 0xfee0_0000;
    if (fn.configRead(0, 2) !== VENDOR_ID) throw new Error(`not a virtio function: vendor 0x${fn.configRead(0, 2).toString(16)}`);
    this.caps = this.findCapabilities();
    this.assignBars(options);
  }

  /**
   * An MSI message from the function, as the platform's interrupt controller
   * receives it: the data names the vector, the vector the events mapped to it.
   */
  deliverMsi(address: number, data: number): void {
    if (address !== this.msiAddress || data >= this.vectorsInUse) {
      this.spurious++;
      return;
    }
    if (data === this.configVector) this.handler({ kind: 'config' });
    const queues = [...this.queueVectors].filter(([, vector]) => vector === data).map(([index]) => index);
    if (queues.length === 1) this.handler({ kind: 'queue', index: queues[0] });
    else if (queues.length > 1) this.handler({ kind: 'queue', index: undefined });
  }

  /** The INTx line changed; when asserted, the handler reads the ISR status (which deasserts it) and dispatches. */
  setIntx(level: boolean): void {
    if (!level) return;
    const isr = this.readIsr();
    if ((isr & 1) !== 0) this.handler({ kind: 'queue', index: undefined });
    if ((isr & 2) !== 0) this.handler({ kind: 'config' });
  }

  /** The handler gets each cause: per queue with MSI-X vectors of their own, unattributed over INTx or shared vectors. */
  onInterrupt(handler: (cause: InterruptCause) => void): void {
    this.handler = handler;
  }

  /** Reads (and so clears) the ISR status. */
  protected abstract readIsr(): number;

  /** Number of MSI-X vectors the device may need: one for configuration, one per queue. */
  protected abstract vectorsWanted(): number;

  /**
   * Sets up interrupts after BARs are live: MSI-X with the table programmed
   * (function masked while entries are written, as Linux does) and INTx
   * disabled, or INTx with MSI-X off.
   */
  protected setupInterrupts(options: PciDriverOptions): void {
    const msix = this.caps.msix;
    const mode = options.interrupts ?? (msix === undefined ? 'intx' : 'msix');
    if (mode === 'intx' || msix === undefined) {
      if (mode === 'msix') throw new Error('the function has no MSI-X capability');
      return;
    }
    const fn = this.fn;
    const tableSize = (fn.configRead(msix + 2, 2) & 0x7ff) + 1;
    this.vectorsNeeded = this.vectorsWanted();
    this.vectorsInUse = Math.min(tableSize, this.vectorsNeeded, options.maxVectors ?? Infinity);
    const table = fn.configRead(msix + 4, 4);
    const tableBar = this.bars[table & 7];
    if (tableBar === undefined) throw new Error('the MSI-X table is in an unassigned BAR');
    const tableAddress = tableBar.address + (table & ~7);
    fn.configWrite(msix + 2, 2, MSIX_ENABLE | MSIX_MASKALL);
    for (let v = 0; v < this.vectorsInUse; v++) {
      fn.mmioWrite(tableAddress + 16 * v, 4, this.msiAddress % TWO_32);
      fn.mmioWrite(tableAddress + 16 * v + 4, 4, Math.floor(this.msiAddress / TWO_32));
      fn.mmioWrite(tableAddress + 16 * v + 8, 4, v);
      fn.mmioWrite(tableAddress + 16 * v + 12, 4, 0);
    }
    fn.configWrite(msix + 2, 2, MSIX_ENABLE);
    fn.configWrite(COMMAND, 2, fn.configRead(COMMAND, 2) | CMD_INTX_DISABLE);
    this.configVector = 0;
  }

  /**
   * The vector queue `index` gets: its own while there are enough, else all
   * queues share vector 1, else everything shares vector 0 (Linux's fallbacks).
   */
  protected vectorFor(index: number): number {
    if (this.vectorsInUse === 0) return NO_VECTOR;
    if (this.vectorsInUse >= this.vectorsNeeded) return 1 + index;
    return this.vectorsInUse >= 2 ? 1 : 0;
  }

  protected requireOk(what: string, ok: boolean): void {
    if (!ok) throw new Error(`${what}: the function did not decode the access; are its BARs assigned and enabled?`);
  }

  private findCapabilities(): VirtioCaps {
    const fn = this.fn;
    const found: { -readonly [K in keyof VirtioCaps]: VirtioCaps[K] } = {
      common: undefined,
      notify: undefined,
      isr: undefined,
      device: undefined,
      pciCfg: undefined,
      notifyOffMultiplier: 0,
      msix: undefined,
    };
    if ((fn.configRead(STATUS, 2) & STATUS_CAP_LIST) === 0) return found;
    let at = fn.configRead(CAPABILITY_LIST, 1) & ~3;
    // A corrupt list could loop: there is room for at most 48 capabilities.
    for (let n = 0; at >= 0x40 && n < 48; n++, at = fn.configRead(at + 1, 1) & ~3) {
      const id = fn.configRead(at, 1);
      if (id === CAP_MSIX) found.msix ??= at;
      if (id !== CAP_VENDOR) continue;
      const type = fn.configRead(at + 3, 1);
      const bar = fn.configRead(at + 4, 1);
      // spec 4.1.4.1: ignore reserved BAR values; use the first capability of each type.
      if (bar > 5) continue;
      const structure = { bar, offset: fn.configRead(at + 8, 4), length: fn.configRead(at + 12, 4) };
      if (type === CapType.COMMON) found.common ??= structure;
      else if (type === CapType.ISR) found.isr ??= structure;
      else if (type === CapType.DEVICE) found.device ??= structure;
      else if (type === CapType.PCI_CFG) found.pciCfg ??= at;
      else if (type === CapType.NOTIFY && found.notify === undefined) {
        found.notify = structure;
        found.notifyOffMultiplier = fn.configRead(at + 16, 4);
      }
    }
    return found;
  }

  /**
   * Sizes each BAR (write all ones, read back the mask) with decoding off, as
   * Linux's pci_read_bases does, places it naturally aligned in its window, and
   * turns on memory and I/O decoding and bus mastering.
   */
  private assignBars(options: PciDriverOptions): void {
    const fn = this.fn;
    const next = { io: options.ioBase ?? 0xc000, mem32: options.memory32Base ?? 0xe000_0000, mem64: options.memory64Base ?? 0x80_0000_0000 };
    const command = fn.configRead(COMMAND, 2);
    fn.configWrite(COMMAND, 2, command & ~(CMD_IO | CMD_MEMORY));
    for (let index = 0; index < 6; index++) {
      const register = BAR0 + 4 * index;
      fn.configWrite(register, 4, 0xffffffff);
      const low = fn.configRead(register, 4);
      if (low === 0) continue;
      const io = (low & 1) !== 0;
      const is64 = !io && (low & 0x6) === 0x4;
      let size: number;
      if (io) {
        size = (~(low & ~0x3) + 1) & 0xffff;
      } else if (is64) {
        fn.configWrite(register + 4, 4, 0xffffffff);
        const mask = (BigInt(fn.configRead(register + 4, 4)) << 32n) | BigInt(low & ~0xf);
        size = Number((~mask & 0xffff_ffff_ffff_ffffn) + 1n);
      } else {
        size = (~(low & ~0xf) + 1) >>> 0;
      }
      const window = io ? 'io' : is64 ? 'mem64' : 'mem32';
      const address = Math.ceil(next[window] / size) * size;
      next[window] = address + size;
      fn.configWrite(register, 4, address % TWO_32);
      if (is64) fn.configWrite(register + 4, 4, Math.floor(address / TWO_32));
      this.bars[index] = { io, address, size };
      if (is64) index++;
    }
    fn.configWrite(COMMAND, 2, command | CMD_IO | CMD_MEMORY | CMD_MASTER);
  }
}

/**
 * The modern virtio PCI driver (spec 4.1, as Linux's virtio_pci_modern): finds
 * the common, notify, ISR and device configuration structures through the
 * vendor capabilities, and programs queues, features and MSI-X vectors through
 * the common configuration.
 */
export class PciDriverTransport extends PciDriverBase implements DriverTransport {
  /** 'pci', for test titles. */
  readonly name = 'pci';
  private readonly access: 'bar' | 'pci-cfg';
  private readonly common: Structure;
  private readonly notifyArea: Structure;
  private readonly isr: Structure;
  private readonly notifyOffsets = new Map<number, number>();

  /** Enumerates the function and sets it up for the driver; throws if it is not a modern virtio function. */
  constructor(memory: GuestMemory, fn: PciFunctionAccess, options: PciDriverOptions = {}) {
    super(memory, fn, options);
    const { common, notify, isr } = this.caps;
    // spec 4.1.5.1.1.1: without virtio capabilities this is a legacy device, which a modern driver must refuse.
    if (common === undefined || notify === undefined || isr === undefined) throw new Error('no virtio capabilities: a legacy-only device');
    this.common = common;
    this.notifyArea = notify;
    this.isr = isr;
    this.access = options.access ?? 'bar';
    if (this.access === 'pci-cfg' && this.caps.pciCfg === undefined) throw new Error('the function has no VIRTIO_PCI_CAP_PCI_CFG capability');
    this.setupInterrupts(options);
  }

  /** The Device ID less 0x1040 (a modern ID), or the transitional ID as it is. */
  deviceId(): number {
    const id = this.fn.configRead(0x02, 2);
    return id >= 0x1040 ? id - 0x1040 : id;
  }

  /** device_status 0, then (spec 4.1.4.3.2) waits until it reads 0 before reinitialising, as Linux's vp_reset polls it. */
  reset(): void | Promise<void> {
    this.write(this.common, Common.STATUS, 1, 0);
    const finished = pollUntil(() => this.read(this.common, Common.STATUS, 1) === 0, 'device_status did not read 0 after reset');
    return andThen(finished, () => {
      // Reset unmapped every event (spec 4.1.5.1.2.1): map configuration changes again, and check it took.
      if (this.vectorsInUse > 0) {
        this.write(this.common, Common.MSIX, 2, this.configVector);
        if (this.read(this.common, Common.MSIX, 2) !== this.configVector) throw new Error('config_msix_vector mapping failed');
      }
      this.queueVectors.clear();
    });
  }

  /** device_status. */
  getStatus(): number {
    return this.read(this.common, Common.STATUS, 1);
  }

  /** device_status. */
  setStatus(status: number): void {
    this.write(this.common, Common.STATUS, 1, status);
  }

  /** device_feature, page by page through device_feature_select. */
  readDeviceFeatures(): bigint {
    let features = 0n;
    for (let page = 0; page < 4; page++) {
      this.write(this.common, Common.DFSELECT, 4, page);
      features |= BigInt(this.read(this.common, Common.DF, 4)) << BigInt(32 * page);
    }
    return features;
  }

  /** driver_feature, page by page through driver_feature_select. */
  writeDriverFeatures(features: bigint): void {
    for (let page = 0; page < 4; page++) {
      this.write(this.common, Common.GFSELECT, 4, page);
      this.write(this.common, Common.GF, 4, Number((features >> BigInt(32 * page)) & 0xffffffffn));
    }
  }

  /** num_queues. */
  queueCount(): number {
    return this.read(this.common, Common.NUMQ, 2);
  }

  /** queue_size of queue `index`, which holds the maximum until the driver writes it (spec 4.1.4.3.1). */
  queueMaxSize(index: number): number {
    this.write(this.common, Common.Q_SELECT, 2, index);
    return this.read(this.common, Common.Q_SIZE, 2);
  }

  /** Spec 4.1.5.1.3: size, the three areas, the MSI-X vector (read back to check it took), the notify offset, then queue_enable. */
  setupQueue(index: number, config: QueueConfig): boolean {
    const c = this.common;
    this.write(c, Common.Q_SELECT, 2, index);
    this.write(c, Common.Q_SIZE, 2, config.size);
    this.write(c, Common.Q_DESCLO, 4, config.descAddr % TWO_32);
    this.write(c, Common.Q_DESCHI, 4, Math.floor(config.descAddr / TWO_32));
    this.write(c, Common.Q_AVAILLO, 4, config.driverAddr % TWO_32);
    this.write(c, Common.Q_AVAILHI, 4, Math.floor(config.driverAddr / TWO_32));
    this.write(c, Common.Q_USEDLO, 4, config.deviceAddr % TWO_32);
    this.write(c, Common.Q_USEDHI, 4, Math.floor(config.deviceAddr / TWO_32));
    if (this.vectorsInUse > 0) {
      const vector = this.vectorFor(index);
      this.write(c, Common.Q_MSIX, 2, vector);
      // spec 4.1.5.1.2.2: the driver verifies a mapping by reading it back.
      if (this.read(c, Common.Q_MSIX, 2) !== vector) throw new Error(`queue ${index}: queue_msix_vector mapping failed`);
      this.queueVectors.set(index, vector);
    }
    this.notifyOffsets.set(index, this.read(c, Common.Q_NOFF, 2) * this.caps.notifyOffMultiplier);
    this.write(c, Common.Q_ENABLE, 2, 1);
    return this.read(c, Common.Q_ENABLE, 2) === 1;
  }

  /**
   * queue_reset 1, then (spec 4.1.4.3.2) waits until it reads 0, and until
   * queue_enable does, as Linux's vp_modern_set_queue_reset polls them.
   */
  resetQueue(index: number): void | Promise<void> {
    this.write(this.common, Common.Q_SELECT, 2, index);
    this.write(this.common, Common.Q_RESET, 2, 1);
    const finished = pollUntil(
      () => this.read(this.common, Common.Q_RESET, 2) === 0 && this.read(this.common, Common.Q_ENABLE, 2) === 0,
      `queue ${index}: queue_reset and queue_enable did not read 0`,
    );
    return andThen(finished, () => {
      this.queueVectors.delete(index);
    });
  }

  /** A write at the queue's notify address: the 16-bit index, or 32 bits of notification data (spec 4.1.5.2). */
  notify(index: number, data?: number): void {
    const offset = this.notifyOffsets.get(index) ?? 0;
    // spec 4.1.5.2: a 16-bit queue index, or 32 bits of notification data.
    if (data === undefined) this.write(this.notifyArea, offset, 2, index);
    else this.write(this.notifyArea, offset, 4, data);
  }

  /** The device configuration structure, in the widest naturally aligned accesses that fit. */
  readConfig(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const view = new DataView(out.buffer);
    const device = this.deviceArea();
    for (let at = 0; at < length; ) {
      const size = accessSize(offset + at, length - at);
      const value = this.read(device, offset + at, size);
      if (size === 4) view.setUint32(at, value, true);
      else if (size === 2) view.setUint16(at, value, true);
      else view.setUint8(at, value);
      at += size;
    }
    return out;
  }

  /** The device configuration structure, in the widest naturally aligned accesses that fit. */
  writeConfig(offset: number, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const device = this.deviceArea();
    for (let at = 0; at < data.length; ) {
      const size = accessSize(offset + at, data.length - at);
      const value = size === 4 ? view.getUint32(at, true) : size === 2 ? view.getUint16(at, true) : view.getUint8(at);
      this.write(device, offset + at, size, value);
      at += size;
    }
  }

  /** config_generation. */
  configGeneration(): number {
    return this.read(this.common, Common.GENERATION, 1);
  }

  protected readIsr(): number {
    return this.read(this.isr, 0, 1);
  }

  protected vectorsWanted(): number {
    return 1 + this.queueCount();
  }

  private deviceArea(): Structure {
    if (this.caps.device === undefined) throw new Error('the device has no device-specific configuration');
    return this.caps.device;
  }

  /** A read inside a virtio structure, through its BAR or the configuration access window. */
  private read(area: Structure, offset: number, size: number): number {
    if (this.access === 'pci-cfg') {
      this.aimWindow(area, offset, size);
      return this.fn.configRead((this.caps.pciCfg as number) + 16, size);
    }
    const bar = this.bars[area.bar];
    const value = bar === undefined ? undefined : this.fn.mmioRead(bar.address + area.offset + offset, size);
    this.requireOk('read', value !== undefined);
    return value as number;
  }

  private write(area: Structure, offset: number, size: number, value: number): void {
    if (this.access === 'pci-cfg') {
      this.aimWindow(area, offset, size);
      this.fn.configWrite((this.caps.pciCfg as number) + 16, size, value);
      return;
    }
    const bar = this.bars[area.bar];
    this.requireOk('write', bar !== undefined && this.fn.mmioWrite(bar.address + area.offset + offset, size, value));
  }

  /** Points the VIRTIO_PCI_CAP_PCI_CFG window at `size` bytes of `area` (spec 4.1.4.9). */
  private aimWindow(area: Structure, offset: number, size: number): void {
    const cap = this.caps.pciCfg as number;
    this.fn.configWrite(cap + 4, 1, area.bar);
    this.fn.configWrite(cap + 8, 4, area.offset + offset);
    this.fn.configWrite(cap + 12, 4, size);
  }
}

/**
 * Where a legacy PCI driver places a queue of `size` entries at page-aligned
 * `descAddr`: the legacy split layout with Queue Align fixed at 4096 (spec
 * 2.7.2, 4.1.5.1.3.1).
 */
export function legacyPciQueueLayout(descAddr: number, size: number): QueueConfig {
  return legacySplitRingLayout(descAddr, size, LEGACY_QUEUE_ALIGN);
}

/**
 * The legacy virtio PCI driver (virtio 0.9.5, as Linux's virtio_pci_legacy)
 * for transitional devices: everything through the I/O header in BAR 0, 32
 * feature bits, no FEATURES_OK step, queues by page frame number in the fixed
 * legacy layout ({@link legacyPciQueueLayout}), and device configuration after
 * a header that grows by 4 bytes while MSI-X is enabled.
 */
export class PciLegacyDriverTransport extends PciDriverBase implements DriverTransport {
  /** 'pci-legacy', for test titles. */
  readonly name = 'pci-legacy';
  private readonly port: number;

  /** Enumerates a transitional function and sets it up; throws if it is not one. */
  constructor(memory: GuestMemory, fn: PciFunctionAccess, options: PciDriverOptions = {}) {
    super(memory, fn, options);
    const id = fn.configRead(0x02, 2);
    // Legacy drivers match transitional IDs with revision 0 only (spec 4.1.2.3).
    if (id < 0x1000 || id > 0x103f || fn.configRead(REVISION, 1) !== 0) throw new Error(`device 0x${id.toString(16)} is not transitional`);
    const bar0 = this.bars[0];
    if (bar0?.io !== true) throw new Error('a transitional device has its legacy interface in I/O BAR 0');
    this.port = bar0.address;
    this.setupInterrupts(options);
  }

  /** The virtio device ID from the subsystem ID, which transitional devices set to it (spec 4.1.2.3). */
  deviceId(): number {
    return this.fn.configRead(0x2e, 2);
  }

  /**
   * Status 0, then one read to flush the write, as Linux's legacy vp_reset
   * does: it does not poll, so the reset must be complete when the write
   * returns, which a VMM ensures by holding the vCPU ({@link PciFunctionAccess.pendingCompletion}).
   */
  reset(): void | Promise<void> {
    this.out(Legacy.STATUS, 1, 0);
    return andThen(this.fn.pendingCompletion, () => {
      const status = this.in(Legacy.STATUS, 1);
      if (status !== 0) throw new Error(`status is 0x${status.toString(16)} after reset, not 0; the VMM must hold the vCPU until pendingCompletion settles`);
      if (this.vectorsInUse > 0) {
        this.out(Legacy.CONFIG_VECTOR, 2, this.configVector);
        if (this.in(Legacy.CONFIG_VECTOR, 2) !== this.configVector) throw new Error('legacy config vector mapping failed');
      }
      this.queueVectors.clear();
    });
  }

  /** Device Status. */
  getStatus(): number {
    return this.in(Legacy.STATUS, 1);
  }

  /** Device Status. */
  setStatus(status: number): void {
    this.out(Legacy.STATUS, 1, status);
  }

  /** Device Features: 32 bits only. */
  readDeviceFeatures(): bigint {
    return BigInt(this.in(Legacy.HOST_FEATURES, 4));
  }

  /** Driver Features: the low 32 bits. */
  writeDriverFeatures(features: bigint): void {
    this.out(Legacy.GUEST_FEATURES, 4, Number(features & 0xffffffffn));
  }

  /** Legacy devices report no queue count: probe until a queue reads size 0, as legacy drivers do. */
  queueCount(): number {
    let count = 0;
    while (count < 0x10000 && this.queueMaxSize(count) !== 0) count++;
    return count;
  }

  /** Queue Size of queue `index`: fixed by the device. */
  queueMaxSize(index: number): number {
    this.out(Legacy.QUEUE_SEL, 2, index);
    return this.in(Legacy.QUEUE_NUM, 2);
  }

  /** Only the legacy layout at the device's own size can be expressed; anything else returns false untouched. */
  setupQueue(index: number, config: QueueConfig): boolean {
    const expected = legacyPciQueueLayout(config.descAddr, this.queueMaxSize(index));
    if (config.descAddr % LEGACY_QUEUE_ALIGN !== 0 || config.size !== expected.size || config.driverAddr !== expected.driverAddr || config.deviceAddr !== expected.deviceAddr) {
      return false;
    }
    this.out(Legacy.QUEUE_PFN, 4, config.descAddr / LEGACY_QUEUE_ALIGN);
    if (this.vectorsInUse > 0) {
      const vector = this.vectorFor(index);
      this.out(Legacy.QUEUE_VECTOR, 2, vector);
      if (this.in(Legacy.QUEUE_VECTOR, 2) !== vector) throw new Error(`queue ${index}: legacy queue vector mapping failed`);
      this.queueVectors.set(index, vector);
    }
    return this.in(Legacy.QUEUE_PFN, 4) === config.descAddr / LEGACY_QUEUE_ALIGN;
  }

  /** Legacy has no queue reset; a zero page frame number deactivates the queue. */
  resetQueue(index: number): void {
    this.out(Legacy.QUEUE_SEL, 2, index);
    this.out(Legacy.QUEUE_PFN, 4, 0);
    this.queueVectors.delete(index);
  }

  /** Queue Notify with the queue index. */
  notify(index: number): void {
    this.out(Legacy.QUEUE_NOTIFY, 2, index);
  }

  /** Device configuration after the header, byte by byte. */
  readConfig(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.in(this.configBase() + offset + i, 1);
    return out;
  }

  /** Device configuration after the header, byte by byte. */
  writeConfig(offset: number, data: Uint8Array): void {
    data.forEach((byte, i) => this.out(this.configBase() + offset + i, 1, byte));
  }

  /** Legacy devices have no configuration generation. */
  configGeneration(): number {
    return 0;
  }

  protected readIsr(): number {
    return this.in(Legacy.ISR, 1);
  }

  protected vectorsWanted(): number {
    return 1 + this.queueCount();
  }

  /** Device configuration follows the header: 24 bytes with MSI-X enabled, else 20. */
  private configBase(): number {
    return this.vectorsInUse > 0 ? 24 : 20;
  }

  private in(offset: number, size: number): number {
    const value = this.fn.ioRead(this.port + offset, size);
    this.requireOk('port read', value !== undefined);
    return value as number;
  }

  private out(offset: number, size: number, value: number): void {
    this.requireOk('port write', this.fn.ioWrite(this.port + offset, size, value));
  }
}

/** The widest natural access at `offset` with `remaining` bytes left. */
function accessSize(offset: number, remaining: number): number {
  if (offset % 4 === 0 && remaining >= 4) return 4;
  if (offset % 2 === 0 && remaining >= 2) return 2;
  return 1;
}
