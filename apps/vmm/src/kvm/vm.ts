import { KvmError } from './errors.js';
import { KVM } from './ioctls.js';
import type { Kvm } from './kvm.js';
import { EFD_FLAGS, libc } from './libc.js';

/** An MSI message: what a device writes, where (x86: 0xFEExxxxx), to interrupt. */
export interface MsiMessage {
  /** The MSI address (0xFEExxxxx: destination APIC and mode). */
  readonly address: bigint;
  /** The MSI data (vector and delivery mode). */
  readonly data: number;
}

/** An ioeventfd registration: guest writes matching it signal the eventfd instead of exiting. */
export interface IoEventSpec {
  /** Port number (pio) or guest-physical address. */
  readonly address: number;
  /** Access width the match requires: 1, 2, 4 or 8 (0: any, with KVM_CAP_IOEVENTFD_ANY_LENGTH). */
  readonly length: number;
  /** Only writes of this value match. */
  readonly datamatch?: number;
  /** A port-I/O address rather than MMIO. */
  readonly pio?: boolean;
}

const IRQFD_FLAG_DEASSIGN = 1;
const IRQFD_FLAG_RESAMPLE = 2;
const IOEVENTFD_FLAG_DATAMATCH = 1;
const IOEVENTFD_FLAG_PIO = 2;
const IOEVENTFD_FLAG_DEASSIGN = 4;

/**
 * A KVM virtual machine: its memory slots, in-kernel interrupt controllers,
 * interrupt injection (KVM_IRQ_LINE, KVM_SIGNAL_MSI, irqfd) and ioeventfds.
 * VM ioctls may be issued from any thread; the VMM issues them from the main one.
 */
export class Vm {
  /** The VM file descriptor. */
  readonly fd: number;
  /** The /dev/kvm the VM was created from. */
  readonly kvm: Kvm;
  private nextSlot = 0;
  private readonly scratch = new Uint8Array(64);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private closed = false;

  /** Creates a VM (KVM_CREATE_VM, machine type 0). */
  constructor(kvm: Kvm) {
    const fd = libc().ioctlInt(kvm.fd, KVM.CREATE_VM, 0);
    if (fd < 0) throw new KvmError('KVM_CREATE_VM', libc().errno());
    this.fd = fd;
    this.kvm = kvm;
  }

  /** Maps `size` bytes of host memory at `hostAddress` into the guest at `guestAddress`. */
  addMemory(guestAddress: number, size: number, hostAddress: bigint): void {
    const v = this.clearScratch(32);
    v.setUint32(0, this.nextSlot++, true);
    v.setUint32(4, 0, true);
    v.setBigUint64(8, BigInt(guestAddress), true);
    v.setBigUint64(16, BigInt(size), true);
    v.setBigUint64(24, hostAddress, true);
    this.check(libc().ioctlPtr(this.fd, KVM.SET_USER_MEMORY_REGION, this.scratch), 'KVM_SET_USER_MEMORY_REGION');
  }

  /**
   * Creates the in-kernel PIC, IOAPIC and local APICs, and places the three
   * pages Intel VMX needs for real-mode emulation (TSS) and the identity map.
   */
  createIrqchip(tssAddress: number): void {
    const c = libc();
    this.check(c.ioctlInt(this.fd, KVM.SET_TSS_ADDR, tssAddress), 'KVM_SET_TSS_ADDR');
    this.clearScratch(8).setBigUint64(0, BigInt(tssAddress + 0x3000), true);
    this.check(c.ioctlPtr(this.fd, KVM.SET_IDENTITY_MAP_ADDR, this.scratch), 'KVM_SET_IDENTITY_MAP_ADDR');
    this.check(c.ioctlInt(this.fd, KVM.CREATE_IRQCHIP, 0), 'KVM_CREATE_IRQCHIP');
  }

  /** Creates the in-kernel i8254 PIT (the kernel calibrates timers against it). */
  createPit(): void {
    this.clearScratch(64);
    this.check(libc().ioctlPtr(this.fd, KVM.CREATE_PIT2, this.scratch), 'KVM_CREATE_PIT2');
  }

  /** Drives interrupt line `gsi` to `level` (KVM_IRQ_LINE). */
  setIrqLine(gsi: number, level: boolean): void {
    const v = this.clearScratch(8);
    v.setUint32(0, gsi, true);
    v.setUint32(4, level ? 1 : 0, true);
    this.check(libc().ioctlPtr(this.fd, KVM.IRQ_LINE, this.scratch), 'KVM_IRQ_LINE');
  }

  /** Delivers an MSI (KVM_SIGNAL_MSI). Returns false if the guest had it masked or it went nowhere. */
  signalMsi(message: MsiMessage): boolean {
    const v = this.clearScratch(32);
    v.setUint32(0, Number(message.address & 0xffffffffn), true);
    v.setUint32(4, Number(message.address >> 32n), true);
    v.setUint32(8, message.data >>> 0, true);
    const r = libc().ioctlPtr(this.fd, KVM.SIGNAL_MSI, this.scratch);
    if (r < 0) throw new KvmError('KVM_SIGNAL_MSI', libc().errno());
    return r > 0;
  }

  /**
   * Attaches `eventfd` to `gsi` (KVM_IRQFD): a write to the eventfd raises the
   * interrupt without a system call into the VM. With `resampleFd` the GSI is
   * level-triggered: KVM lowers it when the guest EOIs and signals `resampleFd`.
   */
  assignIrqfd(eventfd: number, gsi: number, resampleFd?: number): void {
    const v = this.clearScratch(32);
    v.setUint32(0, eventfd, true);
    v.setUint32(4, gsi, true);
    v.setUint32(8, resampleFd === undefined ? 0 : IRQFD_FLAG_RESAMPLE, true);
    v.setUint32(12, resampleFd ?? 0, true);
    this.check(libc().ioctlPtr(this.fd, KVM.IRQFD, this.scratch), 'KVM_IRQFD');
  }

  /** Detaches an irqfd. */
  deassignIrqfd(eventfd: number, gsi: number): void {
    const v = this.clearScratch(32);
    v.setUint32(0, eventfd, true);
    v.setUint32(4, gsi, true);
    v.setUint32(8, IRQFD_FLAG_DEASSIGN, true);
    this.check(libc().ioctlPtr(this.fd, KVM.IRQFD, this.scratch), 'KVM_IRQFD deassign');
  }

  /** Registers (or with `deassign`, removes) an ioeventfd (KVM_IOEVENTFD). */
  ioeventfd(eventfd: number, spec: IoEventSpec, deassign = false): void {
    const v = this.clearScratch(64);
    v.setBigUint64(0, BigInt(spec.datamatch ?? 0), true);
    v.setBigUint64(8, BigInt(spec.address), true);
    v.setUint32(16, spec.length, true);
    v.setInt32(20, eventfd, true);
    const flags =
      (spec.datamatch === undefined ? 0 : IOEVENTFD_FLAG_DATAMATCH) |
      (spec.pio === true ? IOEVENTFD_FLAG_PIO : 0) |
      (deassign ? IOEVENTFD_FLAG_DEASSIGN : 0);
    v.setUint32(24, flags, true);
    this.check(libc().ioctlPtr(this.fd, KVM.IOEVENTFD, this.scratch), 'KVM_IOEVENTFD');
  }

  /** Creates vCPU `id` and returns its file descriptor. */
  createVcpu(id: number): number {
    const fd = libc().ioctlInt(this.fd, KVM.CREATE_VCPU, id);
    if (fd < 0) throw new KvmError(`KVM_CREATE_VCPU ${id}`, libc().errno());
    return fd;
  }

  /** Closes the VM descriptor. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc().close(this.fd);
  }

  private clearScratch(length: number): DataView {
    this.scratch.fill(0, 0, length);
    return this.scratchView;
  }

  private check(result: number, operation: string): void {
    if (result < 0) throw new KvmError(operation, libc().errno());
  }
}

/** Creates a non-blocking, close-on-exec eventfd. */
export function createEventFd(): number {
  const fd = libc().eventfd(0, EFD_FLAGS);
  if (fd < 0) throw new KvmError('eventfd', libc().errno());
  return fd;
}
