import {
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_RESET,
  VirtioCore,
  featureBit,
  type GuestMemory,
  type VirtioCoreSnapshot,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import type { Bar, PciBar } from './bar.js';
import { readCommonConfig, writeCommonConfig } from './common-config.js';
import type { ConfigSpace } from './config-space.js';
import { IsrStatus, Msix, PCIE_CONFIG_SPACE_SIZE, PciCommand, PciConfig, PciPm, PciStatus, VIRTIO_MSI_NO_VECTOR, VirtioPciCapField } from './constants.js';
import { readDeviceConfig, writeDeviceConfig } from './device-config.js';
import { buildConfigSpace } from './function-config.js';
import { VirtioFunctionState, type FunctionStateSnapshot, type PciViolations } from './function-state.js';
import { pciDeviceId } from './identity.js';
import { DEVICE_CFG_OFFSET, ISR_OFFSET, PciBarIndex, layoutFunction, type FunctionLayout } from './layout.js';
import { readLegacy, writeLegacy } from './legacy-io.js';
import { MsixTable, type MsiSink } from './msix.js';

/** The INTx pin of the function, as the VMM wires it to its interrupt controller. */
export interface IntxLine {
  /** Drives the line: true asserts it (level-triggered), false deasserts it. */
  set(level: boolean): void;
}

/** Options for {@link PciTransport}. */
export interface PciTransportOptions {
  /** The device the function carries. */
  readonly device: VirtioDevice;
  /** Guest memory. */
  readonly memory: GuestMemory;
  /** Where MSI-X messages go. Without it the function has no MSI-X capability. */
  readonly msi?: MsiSink;
  /** The INTx line. Without it Interrupt Pin reads 0 and only MSI-X interrupts. */
  readonly intx?: IntxLine;
  /** MSI-X table size. Defaults to one vector per queue plus one for configuration changes (at most 2048). */
  readonly msixVectors?: number;
  /**
   * A transitional device (spec 4.1.2.1): the transitional device ID, revision
   * 0, subsystem ID = device type, and the legacy I/O interface in BAR 0.
   * Only the device types in the spec's table have one.
   */
  readonly transitional?: boolean;
  /**
   * A PCI Express function (a Root Complex Integrated Endpoint) with 4 KiB of
   * configuration space and the Power Management capability PCI Express
   * requires. Default false.
   */
  readonly express?: boolean;
  /** notify_off_multiplier: 0 (one address for every queue) or a power of two of at least 4. Default 4. */
  readonly notifyOffMultiplier?: number;
  /** Class code (base class, subclass, interface). Defaults to QEMU's choice for the device type. */
  readonly classCode?: number;
  /** Subsystem Vendor ID of a non-transitional device. Default 0x1af4. */
  readonly subsystemVendorId?: number;
  /** Subsystem ID of a non-transitional device, at least 0x40 (spec 4.1.2.1). Default 0x1100, as QEMU. */
  readonly subsystemId?: number;
  /** Reserved features the transport carries. Default VIRTIO_F_NOTIFICATION_DATA and VIRTIO_F_RING_RESET. */
  readonly transportFeatures?: bigint;
  /**
   * Memory behind the device's shared memory regions, by shmid (at least the
   * region's size). A VMM passes views of the memory it maps into the guest at
   * the BAR; regions not given are allocated here.
   */
  readonly sharedMemory?: ReadonlyMap<number, Uint8Array>;
  /** Diagnostics for guest errors. */
  readonly log?: (message: string) => void;
}

/** A saved function: configuration space, BARs, MSI-X table, the virtio registers and the status machine (with the device). */
export interface PciTransportSnapshot {
  /** Configuration space bytes. */
  readonly config: readonly number[];
  /** Each BAR's registers (low, high), in the order of {@link PciTransport.bars}. */
  readonly bars: readonly (readonly [number, number])[];
  /** The MSI-X table and pending bits, as dwords. */
  readonly msix: { readonly table: readonly number[]; readonly pba: readonly number[] } | undefined;
  /** Selectors, vectors, ISR status and generation. */
  readonly registers: FunctionStateSnapshot;
  /** The status machine, queues and device. */
  readonly core: VirtioCoreSnapshot;
}

/** Where available buffer notifications are written, so a VMM can register ioeventfds instead of trapping. */
export interface NotifyLayout {
  /** The BAR holding the notification structure. */
  readonly bar: number;
  /** Offset of the structure in the BAR (cap.offset). */
  readonly offset: number;
  /** Length of the structure (cap.length). */
  readonly length: number;
  /** notify_off_multiplier: queue i is notified at offset + i * multiplier (spec 4.1.4.4). */
  readonly multiplier: number;
}

const BAR_REGISTERS_END = PciConfig.BASE_ADDRESS_0 + 6 * 4;
const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/**
 * A virtio device as a PCI function (spec 4.1): configuration space with the
 * virtio vendor capabilities and MSI-X, BARs the guest sizes and places, the
 * register structures behind them, MSI-X or INTx interrupts, and the legacy
 * interface of transitional devices.
 *
 * The VMM routes the guest's accesses here: configuration space accesses from
 * its host bridge (ECAM or ports 0xCF8/0xCFC) to {@link configRead} and
 * {@link configWrite}; memory and I/O accesses inside the BARs to
 * {@link barRead} and {@link barWrite} (or by address, {@link mmioRead},
 * {@link ioRead}). It learns where the guest put each BAR from
 * {@link onBarChange}. Every access is validated; bad ones are ignored and
 * counted in {@link violations}, and none throws.
 */
export class PciTransport {
  /** The status machine around the device. */
  readonly core: VirtioCore;
  /** Accesses ignored so far. */
  readonly violations: PciViolations;
  /** The notification structure's place in its BAR. */
  readonly notifyLayout: NotifyLayout;
  private readonly config: ConfigSpace;
  private readonly initialConfig: Uint8Array;
  private readonly state: VirtioFunctionState;
  private readonly layout: FunctionLayout;
  private readonly barByIndex: (Bar | undefined)[] = [];
  private readonly barByRegister: (Bar | undefined)[] = [];
  private readonly msix: MsixTable | undefined;
  private readonly msixCap: number;
  private readonly pmCap: number;
  private readonly pciCfgCap: number;
  private readonly intx: IntxLine | undefined;
  private intxLevel = false;
  /** The device reset a write through the legacy interface started, while it is finishing. */
  private legacyReset: Promise<void> | undefined;
  private readonly listeners = new Set<(bar: PciBar, previous: number | undefined) => void>();

  /** Builds the function; throws if the device cannot be a PCI function with these options. */
  constructor(options: PciTransportOptions) {
    const { device } = options;
    const transitional = options.transitional ?? false;
    const deviceId = pciDeviceId(device.deviceType, transitional);
    if (deviceId === undefined) {
      throw new RangeError(
        transitional
          ? `device type ${device.deviceType} has no transitional PCI device ID (spec 4.1.2.1); create it without transitional`
          : `device type ${device.deviceType} does not fit a PCI device ID (0x1040 + type must be at most 0x107f)`,
      );
    }
    this.core = new VirtioCore({
      device,
      memory: options.memory,
      interrupts: { queue: (index) => this.queueInterrupt(index), config: () => this.configInterrupt() },
      transportFeatures: options.transportFeatures ?? featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET),
      ...(options.log === undefined ? {} : { log: options.log }),
    });
    const vectors = options.msixVectors ?? (options.msi === undefined ? 0 : Math.min(this.core.queueCount + 1, Msix.MAX_VECTORS));
    if (vectors > 0 && options.msi === undefined) throw new RangeError('msixVectors needs an msi sink to send messages to');
    this.state = new VirtioFunctionState(this.core, vectors, {
      isrChanged: () => this.updateIntx(),
      notify: (index, data) => this.notify(index, data),
    });
    this.violations = this.state.violations;
    this.msix = vectors > 0 ? new MsixTable(vectors, options.msi as MsiSink, this.violations) : undefined;
    this.intx = options.intx;
    this.layout = layoutFunction(device, this.msix, {
      transitional,
      notifyOffMultiplier: options.notifyOffMultiplier ?? 4,
      sharedMemory: options.sharedMemory,
    });
    for (const bar of this.layout.bars) {
      this.barByIndex[bar.index] = bar;
      for (let r = 0; r < bar.registers; r++) this.barByRegister[bar.index + r] = bar;
    }
    const { notifyOffset, notifyLength, multiplier } = this.layout;
    this.notifyLayout = { bar: PciBarIndex.VIRTIO, offset: notifyOffset, length: notifyLength, multiplier };
    const built = buildConfigSpace(device, this.layout, {
      deviceId,
      transitional,
      express: options.express ?? false,
      intx: options.intx !== undefined,
      msixVectors: vectors,
      classCode: options.classCode,
      subsystemVendorId: options.subsystemVendorId,
      subsystemId: options.subsystemId,
    });
    this.config = built.config;
    this.pciCfgCap = built.pciCfgCap;
    this.msixCap = built.msixCap;
    this.pmCap = built.pmCap;
    this.initialConfig = this.config.bytes.slice();
  }

  /** The BARs the function implements. */
  get bars(): readonly PciBar[] {
    return this.layout.bars;
  }

  /**
   * After a BAR write: a promise while the device is finishing a reset that
   * the guest wrote through the legacy I/O interface, else undefined (nearly
   * always). Linux's virtio_pci_legacy writes status 0 and reads it once,
   * without polling, so the reset must be complete when the write returns: the
   * VMM does not resume the vCPU that made the write until the promise settles
   * (spec 2.4). A modern driver polls device_status until it reads 0
   * (spec 4.1.4.3.2), so modern writes never need this.
   */
  get pendingCompletion(): Promise<void> | undefined {
    const pending = this.core.resetPending;
    return pending !== undefined && pending === this.legacyReset ? pending : undefined;
  }

  /** Registers a listener for BAR mapping changes (programming, decoding on or off); returns its removal. */
  onBarChange(listener: (bar: PciBar, previous: number | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A copy of configuration space, read without side effects (for dumps and snapshots of the layout). */
  configSpace(): Uint8Array {
    return this.config.bytes.slice();
  }

  /**
   * A configuration space read of `size` bytes (1, 2 or 4, naturally aligned)
   * at `offset` (below 4096). Registers that do not exist read 0; a malformed
   * access reads 0 and is counted.
   */
  configRead(offset: number, size: number): number {
    if (!accessOk(offset, size, PCIE_CONFIG_SPACE_SIZE) || offset % size !== 0) {
      this.violations.access++;
      return 0;
    }
    if (offset >= this.config.size) return 0;
    const data = this.pciCfgCap + VirtioPciCapField.PCI_CFG_DATA;
    if (offset < data + 4 && offset + size > data) this.pciCfgWindow(false);
    return this.config.read(offset, size);
  }

  /** A configuration space write; read-only bits keep their value, a malformed access is counted. */
  configWrite(offset: number, size: number, value: number): void {
    if (!accessOk(offset, size, PCIE_CONFIG_SPACE_SIZE) || offset % size !== 0) {
      this.violations.access++;
      return;
    }
    if (offset >= this.config.size) return;
    value = (value >>> 0) & (ALL_ONES[size] as number);
    if (offset >= PciConfig.BASE_ADDRESS_0 && offset < BAR_REGISTERS_END) {
      this.writeBarRegister(offset, size, value);
      return;
    }
    const command = this.config.read(PciConfig.COMMAND, 2);
    const msixFlags = this.msix === undefined ? 0 : this.config.read(this.msixCap + Msix.FLAGS, 2);
    const powerState = this.powerState();
    this.config.write(offset, size, value);
    const newCommand = this.config.read(PciConfig.COMMAND, 2);
    if (newCommand !== command) this.commandChanged(command, newCommand);
    if (this.powerState() !== powerState) this.powerStateChanged(powerState);
    if (this.msix !== undefined) {
      const flags = this.config.read(this.msixCap + Msix.FLAGS, 2);
      if (flags !== msixFlags) {
        this.msix.setControl((flags & Msix.FLAGS_ENABLE) !== 0, (flags & Msix.FLAGS_MASKALL) !== 0);
        this.updateIntx();
      }
    }
    const data = this.pciCfgCap + VirtioPciCapField.PCI_CFG_DATA;
    if (offset < data + 4 && offset + size > data) this.pciCfgWindow(true);
  }

  /**
   * A read of `size` bytes (1, 2 or 4) at `offset` in BAR `bar`. A BAR the
   * function does not decode reads all ones, as the bus would; malformed
   * accesses read 0. Both are counted.
   */
  barRead(bar: number, offset: number, size: number): number {
    const b = this.barByIndex[bar];
    if (b === undefined || !accessOk(offset, size, b.size)) {
      this.violations.access++;
      return 0;
    }
    if (b.address === undefined) {
      this.violations.access++;
      return ALL_ONES[size] as number;
    }
    return this.readBar(b, offset, size);
  }

  /** A write of `size` bytes (1, 2 or 4) at `offset` in BAR `bar`; ignored (and counted) unless the function decodes the BAR. */
  barWrite(bar: number, offset: number, size: number, value: number): void {
    const b = this.barByIndex[bar];
    if (b === undefined || !accessOk(offset, size, b.size) || b.address === undefined) {
      this.violations.access++;
      return;
    }
    this.writeBar(b, offset, size, (value >>> 0) & (ALL_ONES[size] as number));
  }

  /** A memory read at guest-physical `address`, or undefined if no memory BAR of this function decodes it. */
  mmioRead(address: number, size: number): number | undefined {
    const hit = this.decode(address, size, false);
    return hit === undefined ? undefined : this.barRead(hit.index, address - (hit.address as number), size);
  }

  /** A memory write at guest-physical `address`; false if no memory BAR of this function decodes it. */
  mmioWrite(address: number, size: number, value: number): boolean {
    const hit = this.decode(address, size, false);
    if (hit === undefined) return false;
    this.barWrite(hit.index, address - (hit.address as number), size, value);
    return true;
  }

  /** An I/O port read, or undefined if no I/O BAR of this function decodes the port. */
  ioRead(port: number, size: number): number | undefined {
    const hit = this.decode(port, size, true);
    return hit === undefined ? undefined : this.barRead(hit.index, port - (hit.address as number), size);
  }

  /** An I/O port write; false if no I/O BAR of this function decodes the port. */
  ioWrite(port: number, size: number, value: number): boolean {
    const hit = this.decode(port, size, true);
    if (hit === undefined) return false;
    this.barWrite(hit.index, port - (hit.address as number), size, value);
    return true;
  }

  /**
   * Guest-physical address of queue `index`'s notification location while the
   * virtio BAR is mapped: register an ioeventfd there (2 bytes, or 4 with
   * VIRTIO_F_NOTIFICATION_DATA) and call {@link notify} when it fires.
   * With notify_off_multiplier 0 every queue shares one address and the value
   * written says which queue; then match on the data.
   */
  queueNotifyAddress(index: number): number | undefined {
    const base = this.barByIndex[PciBarIndex.VIRTIO]?.address;
    if (base === undefined || !Number.isInteger(index) || index < 0 || index >= this.core.queueCount) return undefined;
    return base + this.layout.notifyOffset + index * this.layout.multiplier;
  }

  /** The I/O port of the legacy Queue Notify register while BAR 0 is mapped (transitional devices). */
  legacyNotifyPort(): number | undefined {
    const base = this.barByIndex[PciBarIndex.LEGACY]?.address;
    return base === undefined ? undefined : base + 16;
  }

  /**
   * An available buffer notification for queue `index`, as a notify register
   * write delivers it: the path for a VMM's ioeventfd handler. Ignored and
   * counted while bus mastering is off or the function is in D3hot: it does no DMA then.
   */
  notify(index: number, data?: number): void {
    if (!this.writesAllowed()) {
      this.violations.dma++;
      return;
    }
    this.core.notify(index, data);
  }

  /** Whether MSI-X vector `vector`'s pending bit is set. */
  msixPending(vector: number): boolean {
    return this.msix?.pending(vector) ?? false;
  }

  /**
   * Saves the function for pause/resume or migration. Only while no request
   * is in flight (see `VirtioCore.snapshot`).
   */
  snapshot(): PciTransportSnapshot {
    return {
      config: [...this.config.bytes],
      bars: this.layout.bars.map((bar) => [bar.read(0), bar.read(1)] as const),
      msix: this.msix?.save(),
      registers: this.state.snapshot(),
      core: this.core.snapshot(),
    };
  }

  /**
   * Restores a {@link snapshot} taken from a function built with the same
   * options: BAR listeners hear where the BARs are, pending MSI-X messages
   * that are no longer masked are sent, and INTx is driven again. Throws if the
   * snapshot does not fit this function.
   */
  restore(snapshot: PciTransportSnapshot): void {
    if (snapshot.config.length !== this.config.size || snapshot.bars.length !== this.layout.bars.length || (snapshot.msix === undefined) !== (this.msix === undefined)) {
      throw new RangeError('the snapshot is of a PCI function with a different layout; build the transport with the same options');
    }
    this.config.bytes.set(snapshot.config);
    this.layout.bars.forEach((bar, i) => {
      const [low, high] = snapshot.bars[i] as readonly [number, number];
      bar.write(0, low);
      bar.write(1, high);
      for (let r = 0; r < bar.registers; r++) this.config.set(PciConfig.BASE_ADDRESS_0 + 4 * (bar.index + r), 4, bar.read(r));
    });
    if (this.msix !== undefined && snapshot.msix !== undefined) {
      this.msix.load(snapshot.msix);
      const flags = this.config.read(this.msixCap + Msix.FLAGS, 2);
      this.msix.setWritesAllowed(this.writesAllowed());
      this.msix.setControl((flags & Msix.FLAGS_ENABLE) !== 0, (flags & Msix.FLAGS_MASKALL) !== 0);
    }
    this.state.restore(snapshot.registers);
    this.core.restore(snapshot.core);
    this.remap();
    this.updateIntx();
  }

  /** PCI reset (power-on, or a VMM-initiated function reset): unprogrammed BARs, decoding off, MSI-X off, device reset. */
  reset(): void {
    this.config.bytes.set(this.initialConfig);
    for (const bar of this.layout.bars) bar.clear();
    this.msix?.reset();
    this.core.reset();
    this.state.resetVirtio();
    this.updateIntx();
    this.remap();
  }

  private writeBarRegister(offset: number, size: number, value: number): void {
    const register = (offset - PciConfig.BASE_ADDRESS_0) >>> 2;
    const bar = this.barByRegister[register];
    if (bar === undefined) return;
    const aligned = PciConfig.BASE_ADDRESS_0 + 4 * register;
    const shift = 8 * (offset - aligned);
    const mask = (ALL_ONES[size] as number) << shift;
    const merged = ((this.config.read(aligned, 4) & ~mask) | ((value << shift) & mask)) >>> 0;
    const dword = register - bar.index;
    bar.write(dword, merged);
    this.config.set(aligned, 4, bar.read(dword));
    this.remap();
  }

  private commandChanged(before: number, after: number): void {
    const flipped = before ^ after;
    if ((flipped & (PciCommand.IO | PciCommand.MEMORY)) !== 0) this.remap();
    if ((flipped & PciCommand.MASTER) !== 0) this.msix?.setWritesAllowed(this.writesAllowed());
    if ((flipped & PciCommand.INTX_DISABLE) !== 0) this.updateIntx();
  }

  /** The D-state in PMCSR (0 = D0); always D0 without the Power Management capability. */
  private powerState(): number {
    return this.pmCap === 0 ? 0 : this.config.read(this.pmCap + PciPm.CTRL, 2) & PciPm.CTRL_STATE_MASK;
  }

  /**
   * The driver moved the function between D0 and D3hot ([PCI-PM] 5.4): in
   * D3hot it decodes no BARs, writes no memory and raises no interrupt; with
   * No_Soft_Reset back in D0 it carries on where it was. D1 and D2 are not
   * supported, so writes of them are ignored.
   */
  private powerStateChanged(previous: number): void {
    const state = this.powerState();
    if (state !== 0 && state !== PciPm.CTRL_STATE_D3HOT) {
      const control = this.config.read(this.pmCap + PciPm.CTRL, 2);
      this.config.set(this.pmCap + PciPm.CTRL, 2, (control & ~PciPm.CTRL_STATE_MASK) | previous);
      this.violations.write++;
      return;
    }
    this.remap();
    this.msix?.setWritesAllowed(this.writesAllowed());
    this.updateIntx();
  }

  /** Bus mastering on and the function powered: it may write guest memory (DMA, MSI messages). */
  private writesAllowed(): boolean {
    return (this.config.read(PciConfig.COMMAND, 2) & PciCommand.MASTER) !== 0 && this.powerState() === 0;
  }

  /** Recomputes which BARs the function decodes, and where; tells listeners about changes. */
  private remap(): void {
    const command = this.config.read(PciConfig.COMMAND, 2);
    const powered = this.powerState() === 0;
    for (const bar of this.layout.bars) {
      const enabled = powered && (command & (bar.kind === 'io' ? PciCommand.IO : PciCommand.MEMORY)) !== 0;
      const address = enabled ? bar.programmedAddress() : undefined;
      if (address === bar.address) continue;
      const previous = bar.address;
      bar.address = address;
      if (bar.purpose === 'shared-memory') this.mapSharedMemory(address);
      for (const listener of this.listeners) listener(bar, previous);
    }
  }

  /** The device sees its shared memory regions at their guest addresses while the BAR is mapped. */
  private mapSharedMemory(base: number | undefined): void {
    for (const region of this.layout.sharedRegions) {
      if (base === undefined) this.core.sharedMemory.delete(region.id);
      else this.core.sharedMemory.set(region.id, { id: region.id, size: region.size, guestAddress: base + region.offset, bytes: region.bytes });
    }
  }

  private decode(address: number, size: number, io: boolean): Bar | undefined {
    for (const bar of this.layout.bars) {
      if ((bar.kind === 'io') !== io || bar.address === undefined) continue;
      if (address >= bar.address && address + size <= bar.address + bar.size) return bar;
    }
    return undefined;
  }

  private readBar(bar: Bar, offset: number, size: number): number {
    switch (bar.purpose) {
      case 'virtio':
        return this.readVirtio(offset, size);
      case 'msix':
        return this.readMsix(offset, size);
      case 'legacy':
        return readLegacy(this.state, offset, size, this.msix?.enabled ?? false);
      case 'shared-memory':
        return this.accessSharedMemory(offset, size, undefined);
    }
  }

  private writeBar(bar: Bar, offset: number, size: number, value: number): void {
    switch (bar.purpose) {
      case 'virtio':
        this.writeVirtio(offset, size, value);
        return;
      case 'msix':
        this.writeMsix(offset, size, value);
        return;
      case 'legacy':
        writeLegacy(this.state, offset, size, value, this.msix?.enabled ?? false);
        this.legacyReset = this.core.resetPending;
        return;
      case 'shared-memory':
        this.accessSharedMemory(offset, size, value);
        return;
    }
  }

  private readVirtio(offset: number, size: number): number {
    if (offset < ISR_OFFSET) return readCommonConfig(this.state, offset, size, this.layout.multiplier);
    if (offset === ISR_OFFSET) return this.state.readIsr();
    if (offset >= DEVICE_CFG_OFFSET && offset < this.layout.notifyOffset && offset % size === 0) {
      return readDeviceConfig(this.core, offset - DEVICE_CFG_OFFSET, size);
    }
    this.violations.access++;
    return 0;
  }

  private writeVirtio(offset: number, size: number, value: number): void {
    if (offset < ISR_OFFSET) {
      writeCommonConfig(this.state, offset, size, value);
    } else if (offset >= DEVICE_CFG_OFFSET && offset < this.layout.notifyOffset && offset % size === 0) {
      writeDeviceConfig(this.core, offset - DEVICE_CFG_OFFSET, size, value);
    } else if (offset >= this.layout.notifyOffset && offset + size <= this.layout.notifyOffset + this.layout.notifyLength && size !== 1) {
      this.writeNotify(offset - this.layout.notifyOffset, size, value);
    } else if (offset === ISR_OFFSET) {
      this.violations.write++;
    } else {
      this.violations.access++;
    }
  }

  /**
   * A write to the notification structure (spec 4.1.5.2): 16 bits (the queue
   * index), or 32 bits of notification data. Where each queue has its own
   * address, the address selects the queue, as an ioeventfd would see it.
   */
  private writeNotify(offset: number, size: number, value: number): void {
    let index: number;
    if (this.layout.multiplier === 0) {
      index = value & 0xffff;
    } else if (offset % this.layout.multiplier === 0) {
      index = offset / this.layout.multiplier;
    } else {
      this.violations.access++;
      return;
    }
    this.notify(index, size === 4 ? value : undefined);
  }

  /** The MSI-X table and PBA take aligned dword accesses ([PCI] 6.8.2); the PBA is read-only. */
  private readMsix(offset: number, size: number): number {
    const msix = this.msix as MsixTable;
    if (size === 4 && offset % 4 === 0) {
      if (offset < msix.tableBytes) return msix.readTable(offset);
      if (offset >= this.layout.pbaOffset && offset < this.layout.pbaOffset + msix.pbaBytes) return msix.readPba(offset - this.layout.pbaOffset);
    }
    this.violations.access++;
    return 0;
  }

  private writeMsix(offset: number, size: number, value: number): void {
    const msix = this.msix as MsixTable;
    if (size === 4 && offset % 4 === 0 && offset < msix.tableBytes) msix.writeTable(offset, value);
    else if (size === 4 && offset % 4 === 0 && offset >= this.layout.pbaOffset && offset < this.layout.pbaOffset + msix.pbaBytes) this.violations.write++;
    else this.violations.access++;
  }

  /** Reads (value undefined) or writes shared memory through the BAR, for VMMs that trap rather than map it. */
  private accessSharedMemory(offset: number, size: number, value: number | undefined): number {
    for (const region of this.layout.sharedRegions) {
      if (offset < region.offset || offset + size > region.offset + region.size) continue;
      const at = offset - region.offset;
      if (value === undefined) return size === 1 ? region.view.getUint8(at) : size === 2 ? region.view.getUint16(at, true) : region.view.getUint32(at, true);
      if (size === 1) region.view.setUint8(at, value);
      else if (size === 2) region.view.setUint16(at, value, true);
      else region.view.setUint32(at, value, true);
      return 0;
    }
    this.violations.access++;
    return 0;
  }

  /**
   * The VIRTIO_PCI_CAP_PCI_CFG window (spec 4.1.4.9): an access to pci_cfg_data
   * becomes an access of cap.length bytes at cap.offset in BAR cap.bar, whether
   * or not the BAR is mapped. It reaches the virtio structures only, aligned.
   */
  private pciCfgWindow(write: boolean): void {
    const cap = this.pciCfgCap;
    const bar = this.config.read(cap + VirtioPciCapField.BAR, 1);
    const offset = this.config.read(cap + VirtioPciCapField.OFFSET, 4);
    const length = this.config.read(cap + VirtioPciCapField.LENGTH, 4);
    const target = this.barByIndex[bar];
    const data = cap + VirtioPciCapField.PCI_CFG_DATA;
    if (target?.purpose !== 'virtio' || !accessOk(offset, length, target.size) || offset % length !== 0) {
      this.violations.access++;
      return;
    }
    if (write) this.writeVirtio(offset, length, this.config.read(data, 4) & (ALL_ONES[length] as number));
    else this.config.set(data, length, this.readVirtio(offset, length));
  }

  private queueInterrupt(index: number): void {
    if (this.msix?.enabled === true) {
      const vector = this.state.queueVectors[index] as number;
      // spec 4.1.5.3.1: NO_VECTOR means no interrupt at all for this queue.
      if (vector !== VIRTIO_MSI_NO_VECTOR) this.msix.notify(vector);
      return;
    }
    this.state.isr |= IsrStatus.QUEUE;
    this.updateIntx();
  }

  private configInterrupt(): void {
    // spec 4.1.4.5.1: the configuration bit is set before any configuration change notification.
    this.state.isr |= IsrStatus.CONFIG;
    if (this.msix?.enabled === true) {
      if (this.state.configVector !== VIRTIO_MSI_NO_VECTOR) this.msix.notify(this.state.configVector);
      return;
    }
    this.updateIntx();
  }

  /**
   * INTx follows the ISR status while MSI-X is off (spec 4.1.4.5.1): the
   * status register's Interrupt Status bit always, the line unless the
   * command register disables INTx.
   */
  private updateIntx(): void {
    const pending = this.state.isr !== 0 && this.msix?.enabled !== true;
    const status = this.config.read(PciConfig.STATUS, 2);
    this.config.set(PciConfig.STATUS, 2, pending ? status | PciStatus.INTERRUPT : status & ~PciStatus.INTERRUPT);
    const level = pending && (this.config.read(PciConfig.COMMAND, 2) & PciCommand.INTX_DISABLE) === 0 && this.powerState() === 0;
    if (level === this.intxLevel) return;
    this.intxLevel = level;
    this.intx?.set(level);
  }
}

function accessOk(offset: number, size: number, limit: number): boolean {
  return (size === 1 || size === 2 || size === 4) && Number.isInteger(offset) && offset >= 0 && offset <= limit - size;
}
