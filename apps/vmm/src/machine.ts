import type { GuestMemory } from '@virtio-ts/virtqueue';
import { buildAcpiTables, type AcpiTables } from './acpi/build.js';
import type { MmioDeviceEntry } from './acpi/dsdt.js';
import { entryRegs, longModeSregs, writeLongModeTables } from './boot/long-mode.js';
import { vcpuCpuid } from './boot/cpuid.js';
import { loadLinux, type LinuxBoot } from './boot/linux.js';
import { Bus, type BusDevice } from './bus/bus.js';
import { AcpiPower, type PowerEvent } from './devices/acpi-power.js';
import { Uart16550 } from './devices/uart16550.js';
import { Kvm, encodeCpuid, hostVirtualization } from './kvm/kvm.js';
import type { VcpuStop } from './kvm/mailbox.js';
import { EventFdPoller } from './kvm/poller.js';
import { VcpuThread } from './kvm/vcpu.js';
import { Vm, createEventFd, type IoEventSpec } from './kvm/vm.js';
import { libc } from './kvm/libc.js';
import { GuestRam } from './memory/guest-ram.js';
import { HostBridge } from './pci/host-bridge.js';
import { PciRoot } from './pci/pci-root.js';
import { IrqLine, ResamplingIrqfd, SignalMsi, type InterruptLine, type MsiController } from './platform/interrupts.js';
import * as L from './platform/layout.js';

/** How the machine boots. */
export type BootSpec =
  /** A Linux kernel (bzImage or ELF vmlinux) with the 64-bit boot protocol. */
  | ({ readonly kind: 'linux' } & LinuxBoot)
  /**
   * Raw images: bytes placed at guest addresses, entered in 64-bit mode at
   * `entry` with the identity map and GDT the machine sets up (for purpose-built guests).
   */
  | { readonly kind: 'raw'; readonly images: readonly { readonly address: number; readonly bytes: Uint8Array }[]; readonly entry: number };

/** How the guest finished, or why the machine stopped. */
export type MachineOutcome =
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'reboot' }
  /** The host stopped the machine ({@link Machine.stop}). */
  | { readonly kind: 'stopped' }
  /** The guest crashed: a triple fault, a KVM crash event, or an instruction KVM could not run. */
  | { readonly kind: 'crash'; readonly message: string };

/** Options for {@link Machine}. */
export interface MachineOptions {
  /** Guest RAM in bytes (a multiple of 2 MiB, at least 16 MiB). */
  readonly memory: number;
  /** Number of vCPUs. */
  readonly cpus: number;
  /** What to boot. */
  readonly boot: BootSpec;
  /** Receives what the guest writes to COM1. */
  readonly console?: (bytes: Uint8Array) => void;
  /** Diagnostics (device errors, guest driver mistakes). */
  readonly log?: (message: string) => void;
  /**
   * How level-triggered GSIs are driven: 'irq-line' (KVM_IRQ_LINE, the
   * default) or 'irqfd' (an irqfd with a resample eventfd, where KVM supports
   * it). Devices here run on the main thread, so KVM_IRQ_LINE costs the same
   * one system call as an irqfd write and follows the device's level exactly;
   * an irqfd's assertion is applied by KVM asynchronously and its resample
   * notification arrives through the event loop, so a trigger can land after
   * the guest acknowledged the device and EOI'd, which the guest sees as a
   * spurious interrupt. irqfd is for devices outside this process.
   */
  readonly gsiInjection?: 'irqfd' | 'irq-line';
  /** Path of the KVM device. */
  readonly kvmPath?: string;
}

/** A virtio-mmio slot the machine reserved for a device. */
export interface MmioSlot extends MmioDeviceEntry {
  /** The device's interrupt line (level-triggered). */
  readonly line: InterruptLine;
}

/** Smallest RAM a machine accepts. */
export const MIN_MEMORY = 16 * 1024 * 1024;
const RAM_GRANULE = 2 * 1024 * 1024;

/**
 * An x86-64 virtual machine on KVM: guest RAM, the in-kernel interrupt
 * controllers and PIT, a 16550 UART on COM1, the ACPI power registers, a PCI
 * root complex with ECAM, virtio-mmio slots, ACPI tables describing all of
 * it, and one worker thread per vCPU. Devices are added between
 * construction and {@link start}; the guest's port and MMIO accesses are
 * served on the constructing thread.
 */
export class Machine {
  /** Guest memory as devices see it. */
  readonly memory: GuestMemory;
  /** The port-I/O space. */
  readonly pio = new Bus('pio');
  /** The MMIO space. */
  readonly mmio = new Bus('mmio');
  /** PCI bus 0. */
  readonly pci = new PciRoot();
  /** Delivers MSIs to the guest. */
  readonly msi: MsiController;
  /** Waits for ioeventfds and resample eventfds. */
  readonly poller = new EventFdPoller();
  /** Settles once with how the machine ended. */
  readonly outcome: Promise<MachineOutcome>;
  /** The KVM virtual machine (for ioeventfd registration). */
  readonly vm: Vm;
  /** The ACPI tables, once {@link start} built them. */
  acpi: AcpiTables | undefined;

  private readonly options: MachineOptions;
  private readonly kvm: Kvm;
  /** The guest RAM mapping. */
  readonly ram: GuestRam;
  private readonly uart: Uart16550;
  private readonly log: (message: string) => void;
  private readonly lines: InterruptLine[] = [];
  private readonly mmioSlots: MmioSlot[] = [];
  private readonly teardowns: (() => void | Promise<void>)[] = [];
  private vcpus: VcpuThread[] = [];
  private finish: (outcome: MachineOutcome) => void = () => undefined;
  private finished = false;
  private started = false;
  private pciWindowNext = L.PCI_MMIO_START;
  private consoleBuffer: number[] = [];
  private consoleFlush: NodeJS.Immediate | undefined;

  /** Creates the VM and its platform devices. Throws {@link KvmError} or RangeError with a message for people. */
  constructor(options: MachineOptions) {
    if (!Number.isSafeInteger(options.memory) || options.memory < MIN_MEMORY || options.memory % RAM_GRANULE !== 0) {
      throw new RangeError(`memory size ${options.memory} must be a multiple of 2 MiB and at least 16 MiB`);
    }
    if (!Number.isInteger(options.cpus) || options.cpus < 1 || options.cpus > 255) {
      throw new RangeError(`cpu count ${options.cpus} must be between 1 and 255`);
    }
    this.options = options;
    this.log = options.log ?? (() => undefined);
    this.outcome = new Promise((resolve) => (this.finish = resolve));
    this.kvm = Kvm.open(options.kvmPath);
    const caps = this.kvm.capabilities;
    if (!caps.irqchip || !caps.ioeventfd || !caps.immediateExit) {
      this.kvm.close();
      throw new Error('this KVM lacks the in-kernel irqchip, ioeventfd or immediate_exit the VMM needs');
    }
    if (options.cpus > caps.maxVcpus) {
      this.kvm.close();
      throw new RangeError(`this KVM supports at most ${caps.maxVcpus} vCPUs`);
    }
    this.vm = new Vm(this.kvm);
    this.vm.createIrqchip(L.KVM_TSS_START);
    if (caps.pit2) this.vm.createPit();
    this.ram = new GuestRam(this.vm, options.memory);
    this.memory = this.ram.memory;
    this.msi = new SignalMsi(this.vm);

    this.uart = new Uart16550({ transmit: (byte) => this.consoleByte(byte), irq: (level) => this.vm.setIrqLine(L.COM1_IRQ, level) });
    this.pio.register(L.COM1_PORT, 8, this.uart, 'COM1');
    const power = new AcpiPower((event) => this.powerEvent(event));
    this.pio.register(L.ACPI_SLEEP_CONTROL_PORT, 3, power, 'ACPI power registers');
    this.pio.register(L.PCI_CONFIG_ADDRESS_PORT, 8, this.pci.ioPorts, 'PCI configuration ports');
    this.mmio.register(L.ECAM_START, L.ECAM_SIZE, this.pci.ecam, 'PCI ECAM');
    this.pci.attach(0, new HostBridge());
  }

  /** Which way GSIs are injected, after falling back where KVM lacks irqfd resampling. */
  get gsiInjection(): 'irqfd' | 'irq-line' {
    const caps = this.kvm.capabilities;
    return this.options.gsiInjection === 'irqfd' && caps.irqfd && caps.irqfdResample ? 'irqfd' : 'irq-line';
  }

  /** A level-triggered interrupt line for `gsi` (an IOAPIC pin). */
  interruptLine(gsi: number): InterruptLine {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= L.IOAPIC_PINS) throw new RangeError(`GSI ${gsi} is not an IOAPIC pin`);
    const line = this.gsiInjection === 'irqfd' ? new ResamplingIrqfd(this.vm, gsi, this.poller) : new IrqLine(this.vm, gsi);
    this.lines.push(line);
    return line;
  }

  /**
   * Reserves the next virtio-mmio slot: its register window (announced in the
   * DSDT as an LNRO0005 device) and its level-triggered GSI. The window is at
   * the next free slot address, or at `base` when given (page-aligned, in the
   * MMIO hole, outside the PCI BAR window and ECAM). The caller registers its
   * device on {@link mmio} at `slot.base`; an overlap is refused there.
   */
  reserveMmioSlot(base?: number): MmioSlot {
    this.assertNotStarted();
    const index = this.mmioSlots.length;
    if (index >= L.VIRTIO_MMIO_SLOTS) throw new RangeError(`at most ${L.VIRTIO_MMIO_SLOTS} virtio-mmio devices fit`);
    const size = L.VIRTIO_MMIO_SLOT_SIZE;
    const address = base ?? L.VIRTIO_MMIO_START + index * size;
    const hex = `0x${address.toString(16)}`;
    if (!Number.isSafeInteger(address) || address % 0x1000 !== 0) throw new RangeError(`virtio-mmio address ${hex} is not page-aligned`);
    if (address < L.MMIO_HOLE_START || address + size > L.IOAPIC_START) {
      throw new RangeError(`virtio-mmio address ${hex} is outside the MMIO hole 0x${L.MMIO_HOLE_START.toString(16)}-0x${(L.IOAPIC_START - 1).toString(16)}`);
    }
    if (address < L.PCI_MMIO_START + L.PCI_MMIO_SIZE && address + size > L.PCI_MMIO_START) {
      throw new RangeError(`virtio-mmio address ${hex} overlaps the PCI BAR window 0x${L.PCI_MMIO_START.toString(16)}-0x${(L.PCI_MMIO_START + L.PCI_MMIO_SIZE - 1).toString(16)}`);
    }
    const gsi = L.VIRTIO_MMIO_FIRST_GSI + index;
    const slot: MmioSlot = { base: address, size, gsi, line: this.interruptLine(gsi) };
    this.mmioSlots.push(slot);
    return slot;
  }

  /** Allocates `size` bytes (a power of two, naturally aligned) from the PCI 32-bit BAR window. */
  allocatePciMemory(size: number): number {
    if (!Number.isInteger(size) || size < 16 || (size & (size - 1)) !== 0) throw new RangeError(`PCI BAR size ${size} is not a power of two of at least 16`);
    const base = Math.ceil(this.pciWindowNext / size) * size;
    if (base + size > L.PCI_MMIO_START + L.PCI_MMIO_SIZE) throw new RangeError('the PCI BAR window is full');
    this.pciWindowNext = base + size;
    return base;
  }

  /** Registers a device window on the MMIO bus. */
  addMmio(base: number, size: number, device: BusDevice, name: string): void {
    this.mmio.register(base, size, device, name);
  }

  /**
   * Registers an ioeventfd: guest writes matching `spec` no longer exit to
   * the VMM but signal an eventfd, and `handler` runs on this thread when it
   * is signalled. Returns the function that removes it again.
   */
  ioeventfd(spec: IoEventSpec, handler: () => void): () => void {
    const fd = createEventFd();
    this.vm.ioeventfd(fd, spec);
    this.poller.add(fd, handler);
    let removed = false;
    const remove = (): void => {
      if (removed) return;
      removed = true;
      this.poller.remove(fd);
      if (!this.finished) this.vm.ioeventfd(fd, spec, true);
      libc().close(fd);
    };
    this.teardowns.push(remove);
    return remove;
  }

  /**
   * Runs `teardown` when the machine ends, after the vCPUs stopped and before
   * guest RAM is released (device resets). A returned promise (I/O still in
   * flight into guest RAM) is waited for before the RAM goes away.
   */
  onTeardown(teardown: () => void | Promise<void>): void {
    this.teardowns.push(teardown);
  }

  /** Types into the guest's console (COM1 receive). */
  consoleInput(bytes: Uint8Array): void {
    this.uart.receive(bytes);
  }

  /** Builds the ACPI tables, loads the boot image and starts the vCPUs. */
  start(): void {
    this.assertNotStarted();
    this.started = true;
    const acpi = buildAcpiTables(
      {
        dsdt: {
          serial: { port: L.COM1_PORT, irq: L.COM1_IRQ },
          virtioMmio: this.mmioSlots,
          pci: { ecamBase: L.ECAM_START, ecamSize: L.ECAM_SIZE, mmioBase: L.PCI_MMIO_START, mmioSize: L.PCI_MMIO_SIZE, configPort: L.PCI_CONFIG_ADDRESS_PORT },
          s5SleepType: L.ACPI_S5_SLEEP_TYPE,
        },
        madt: { cpus: this.options.cpus, lapicAddress: L.LAPIC_START, ioapicAddress: L.IOAPIC_START, ioapicId: this.options.cpus },
        fadt: { sleepControl: L.ACPI_SLEEP_CONTROL_PORT, sleepStatus: L.ACPI_SLEEP_STATUS_PORT, reset: L.ACPI_RESET_PORT, resetValue: L.ACPI_RESET_VALUE },
        ecamBase: L.ECAM_START,
      },
      L.LOW.acpi,
    );
    if (acpi.blob.length > L.LOW.biosEnd - L.LOW.acpi) throw new RangeError('the ACPI tables do not fit below 1 MiB');
    this.memory.write(L.LOW.acpi, acpi.blob);
    this.acpi = acpi;
    writeLongModeTables(this.memory);

    const boot = this.options.boot;
    let entry: { rip: number; rsi: number };
    if (boot.kind === 'linux') {
      entry = loadLinux(this.memory, boot, { ramBlocks: this.ram.blocks, rsdpAddress: acpi.rsdpAddress, reserved: [{ start: L.ECAM_START, size: L.ECAM_SIZE }] });
    } else {
      for (const image of boot.images) this.memory.write(image.address, image.bytes);
      entry = { rip: boot.entry, rsi: 0 };
    }

    const host = hostVirtualization();
    const supported = this.kvm.supportedCpuid();
    const stopped: Promise<{ id: number; stop: VcpuStop }>[] = [];
    for (let id = 0; id < this.options.cpus; id++) {
      const cpuid = encodeCpuid(vcpuCpuid(supported, { apicId: id, cpus: this.options.cpus, emulatorSafe: host.pvm }));
      // Application processors keep KVM's reset state and wait for INIT/SIPI from the BSP.
      const init = id === 0 ? { cpuid, sregs: longModeSregs(), regs: entryRegs(entry.rip, entry.rsi) } : { cpuid };
      const vcpu = new VcpuThread(this.vm, id, init, {
        pio: (port, isWrite, data) => (isWrite ? this.pio.write(port, data) : this.pio.read(port, data)),
        mmio: (address, isWrite, data) => (isWrite ? this.mmio.write(address, data) : this.mmio.read(address, data)),
      }, { emulatorQuirks: host.pvm, log: this.log });
      this.vcpus.push(vcpu);
      stopped.push(vcpu.stopped.then((stop) => ({ id, stop })));
    }
    for (const s of stopped) {
      void s.then(({ id, stop }) => {
        if (stop.kind === 'stopped') return;
        this.end(vcpuOutcome(id, stop));
      });
    }
  }

  /** Stops the machine from the host side; resolves with the outcome. */
  async stop(): Promise<MachineOutcome> {
    this.end({ kind: 'stopped' });
    return this.outcome;
  }

  private powerEvent(event: PowerEvent): void {
    this.end({ kind: event });
  }

  /** Records the first outcome, stops every vCPU and frees the VM. */
  private end(outcome: MachineOutcome): void {
    if (this.finished) return;
    this.finished = true;
    void (async () => {
      await Promise.all(this.vcpus.map((v) => v.stop()));
      this.flushConsole();
      const failed = (error: unknown): void => this.log(`teardown failed: ${error instanceof Error ? error.message : String(error)}`);
      const finishing: Promise<void>[] = [];
      for (const teardown of this.teardowns.splice(0)) {
        try {
          const done = teardown();
          if (done !== undefined) finishing.push(done.catch(failed));
        } catch (error) {
          failed(error);
        }
      }
      await Promise.all(finishing);
      for (const line of this.lines) if (line instanceof ResamplingIrqfd) line.close();
      this.poller.close();
      this.vm.close();
      this.ram.release();
      this.kvm.close();
      this.finish(outcome);
    })();
  }

  private consoleByte(byte: number): void {
    if (this.options.console === undefined) return;
    this.consoleBuffer.push(byte);
    if (this.consoleBuffer.length >= 4096) this.flushConsole();
    else this.consoleFlush ??= setImmediate(() => this.flushConsole());
  }

  private flushConsole(): void {
    if (this.consoleFlush !== undefined) clearImmediate(this.consoleFlush);
    this.consoleFlush = undefined;
    if (this.consoleBuffer.length === 0) return;
    const bytes = Uint8Array.from(this.consoleBuffer);
    this.consoleBuffer = [];
    this.options.console?.(bytes);
  }

  private assertNotStarted(): void {
    if (this.started) throw new Error('the machine has already started');
  }
}

function vcpuOutcome(id: number, stop: VcpuStop): MachineOutcome {
  switch (stop.kind) {
    case 'shutdown':
      return { kind: 'poweroff' };
    case 'reset':
      return { kind: 'reboot' };
    case 'triple-fault':
      return { kind: 'crash', message: `vCPU ${id} triple-faulted` };
    case 'crash':
      return { kind: 'crash', message: `vCPU ${id}: KVM reported a guest crash` };
    case 'halted':
      return { kind: 'crash', message: `vCPU ${id} halted with interrupts disabled` };
    case 'error':
      return { kind: 'crash', message: `vCPU ${id}: ${stop.message}` };
    case 'stopped':
      return { kind: 'stopped' };
  }
}
