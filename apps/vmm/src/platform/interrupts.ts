import { KvmError } from '../kvm/errors.js';
import { libc } from '../kvm/libc.js';
import type { EventFdPoller } from '../kvm/poller.js';
import { createEventFd, type MsiMessage, type Vm } from '../kvm/vm.js';

/** A level-triggered interrupt line into the IOAPIC (a GSI). */
export interface InterruptLine {
  /** The GSI this line drives. */
  readonly gsi: number;
  /** Drives the line high (asserted) or low. */
  set(level: boolean): void;
}

/** Delivers MSI messages (PCI MSI-X) to the local APICs. */
export interface MsiController {
  /** Sends one message; false if KVM delivered it nowhere (no APIC matched, or it was blocked). */
  signal(message: MsiMessage): boolean;
}

/** A GSI driven by KVM_IRQ_LINE: each change of level is one ioctl. */
export class IrqLine implements InterruptLine {
  private level = false;

  /** Drives `gsi` of `vm`'s in-kernel IOAPIC; the line starts low. */
  constructor(
    private readonly vm: Vm,
    readonly gsi: number,
  ) {}

  /** Drives the line; only a change of level reaches KVM. */
  set(level: boolean): void {
    if (level === this.level) return;
    this.level = level;
    this.vm.setIrqLine(this.gsi, level);
  }
}

/**
 * A level-triggered GSI through an irqfd with a resample eventfd: asserting
 * is a write to the eventfd; KVM lowers the line itself when the guest EOIs
 * the interrupt and then signals the resample eventfd, at which point the
 * line is asserted again if the device still holds it high. Lowering needs no
 * call at all.
 */
export class ResamplingIrqfd implements InterruptLine {
  private readonly triggerFd: number;
  private readonly resampleFd: number;
  private readonly one = new Uint8Array(8);
  private level = false;

  /**
   * Creates the trigger and resample eventfds, assigns them to `gsi` as an irqfd, and watches the
   * resample eventfd on `poller`.
   */
  constructor(
    private readonly vm: Vm,
    readonly gsi: number,
    private readonly poller: EventFdPoller,
  ) {
    new DataView(this.one.buffer).setBigUint64(0, 1n, true);
    this.triggerFd = createEventFd();
    this.resampleFd = createEventFd();
    vm.assignIrqfd(this.triggerFd, gsi, this.resampleFd);
    poller.add(this.resampleFd, () => {
      if (this.level) this.trigger();
    });
  }

  /** Drives the line: a rising edge writes the trigger eventfd; lowering needs no call. */
  set(level: boolean): void {
    const rising = level && !this.level;
    this.level = level;
    if (rising) this.trigger();
  }

  /** Detaches the irqfd and closes its eventfds. */
  close(): void {
    this.poller.remove(this.resampleFd);
    this.vm.deassignIrqfd(this.triggerFd, this.gsi);
    libc().close(this.triggerFd);
    libc().close(this.resampleFd);
  }

  private trigger(): void {
    if (libc().write(this.triggerFd, this.one, 8) < 0) throw new KvmError('irqfd write', libc().errno());
  }
}

/** MSI delivery through KVM_SIGNAL_MSI: one ioctl per message, no routing table to maintain. */
export class SignalMsi implements MsiController {
  /** Injects the messages into `vm`. */
  constructor(private readonly vm: Vm) {}

  /** Sends one message through KVM_SIGNAL_MSI. */
  signal(message: MsiMessage): boolean {
    return this.vm.signalMsi(message);
  }
}
