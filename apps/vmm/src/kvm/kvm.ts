import { existsSync, readFileSync } from 'node:fs';
import { KvmError } from './errors.js';
import { KVM, KVM_API_VERSION, KVM_CAP } from './ioctls.js';
import { CPUID } from './layout.js';
import { O_RDWR_CLOEXEC, libc } from './libc.js';

/** One CPUID leaf as KVM reports or takes it (struct kvm_cpuid_entry2). */
export interface CpuidEntry {
  /** The leaf: the EAX value CPUID is executed with. */
  function: number;
  /** The subleaf: the ECX value, for leaves that have subleaves. */
  index: number;
  /** KVM_CPUID_FLAG_* bits; KVM_CPUID_FLAG_SIGNIFCANT_INDEX says `index` matters. */
  flags: number;
  /** EAX as CPUID returns it for this leaf. */
  eax: number;
  /** EBX as CPUID returns it for this leaf. */
  ebx: number;
  /** ECX as CPUID returns it for this leaf. */
  ecx: number;
  /** EDX as CPUID returns it for this leaf. */
  edx: number;
}

/** What this host's KVM can do, as the VMM uses it. */
export interface KvmCapabilities {
  /** KVM_CAP_IRQCHIP: in-kernel PIC, IOAPIC and local APICs. */
  readonly irqchip: boolean;
  /** KVM_CAP_IRQFD: GSIs raised through eventfds. */
  readonly irqfd: boolean;
  /** KVM_CAP_IRQFD_RESAMPLE: level-triggered irqfds with an EOI notification. */
  readonly irqfdResample: boolean;
  /** KVM_CAP_IOEVENTFD: guest writes turned into eventfd signals. */
  readonly ioeventfd: boolean;
  /** KVM_CAP_SIGNAL_MSI: MSIs injected without a routing table. */
  readonly signalMsi: boolean;
  /** KVM_CAP_PIT2: the in-kernel PIT. */
  readonly pit2: boolean;
  /** KVM_CAP_IMMEDIATE_EXIT: kvm_run.immediate_exit, which stopping a vCPU relies on. */
  readonly immediateExit: boolean;
  /** KVM_CAP_MAX_VCPUS. */
  readonly maxVcpus: number;
}

/**
 * The host's /dev/kvm: opened once, checked for the API version, asked for
 * capabilities and the CPUID it supports.
 */
export class Kvm {
  /** The /dev/kvm file descriptor. */
  readonly fd: number;
  /** Size of each vCPU's kvm_run mapping. */
  readonly vcpuMmapSize: number;
  /** Capabilities the VMM looks at. */
  readonly capabilities: KvmCapabilities;

  private constructor(fd: number) {
    this.fd = fd;
    const c = libc();
    const version = c.ioctlInt(fd, KVM.GET_API_VERSION, 0);
    if (version !== KVM_API_VERSION) {
      c.close(fd);
      throw new KvmError('KVM_GET_API_VERSION', 0, `reported ${version}, expected ${KVM_API_VERSION}`);
    }
    this.vcpuMmapSize = c.ioctlInt(fd, KVM.GET_VCPU_MMAP_SIZE, 0);
    const has = (cap: number): boolean => c.ioctlInt(fd, KVM.CHECK_EXTENSION, cap) > 0;
    const maxVcpus = c.ioctlInt(fd, KVM.CHECK_EXTENSION, KVM_CAP.MAX_VCPUS);
    this.capabilities = {
      irqchip: has(KVM_CAP.IRQCHIP),
      irqfd: has(KVM_CAP.IRQFD),
      irqfdResample: has(KVM_CAP.IRQFD_RESAMPLE),
      ioeventfd: has(KVM_CAP.IOEVENTFD),
      signalMsi: has(KVM_CAP.SIGNAL_MSI),
      pit2: has(KVM_CAP.PIT2),
      immediateExit: has(KVM_CAP.IMMEDIATE_EXIT),
      maxVcpus: maxVcpus > 0 ? maxVcpus : c.ioctlInt(fd, KVM.CHECK_EXTENSION, KVM_CAP.NR_VCPUS),
    };
  }

  /**
   * Opens `path` (default /dev/kvm). Throws a {@link KvmError} whose message
   * says what to do when the device is missing or not accessible.
   */
  static open(path = '/dev/kvm'): Kvm {
    const c = libc();
    const fd = c.open(path, O_RDWR_CLOEXEC);
    if (fd < 0) {
      const errno = c.errno();
      const hint =
        errno === 2
          ? 'this host has no KVM: load the kvm module, or enable virtualization for this VM'
          : errno === 13
            ? `no permission: add your user to the group owning ${path} (usually "kvm") or run as root`
            : undefined;
      throw new KvmError(`open ${path}`, errno, hint);
    }
    return new Kvm(fd);
  }

  /** The CPUID leaves KVM can present to a guest (KVM_GET_SUPPORTED_CPUID). */
  supportedCpuid(): CpuidEntry[] {
    const c = libc();
    for (let count = 64; count <= 4096; count *= 2) {
      const buffer = new Uint8Array(CPUID.headerSize + count * CPUID.entrySize);
      const view = new DataView(buffer.buffer);
      view.setUint32(0, count, true);
      if (c.ioctlPtr(this.fd, KVM.GET_SUPPORTED_CPUID, buffer) < 0) {
        const errno = c.errno();
        if (errno === 7) continue; // E2BIG: more leaves than room; try a larger buffer
        throw new KvmError('KVM_GET_SUPPORTED_CPUID', errno);
      }
      const n = view.getUint32(0, true);
      const entries: CpuidEntry[] = [];
      for (let i = 0; i < n; i++) {
        const at = CPUID.headerSize + i * CPUID.entrySize;
        entries.push({
          function: view.getUint32(at + CPUID.function, true),
          index: view.getUint32(at + CPUID.index, true),
          flags: view.getUint32(at + CPUID.flags, true),
          eax: view.getUint32(at + CPUID.eax, true),
          ebx: view.getUint32(at + CPUID.ebx, true),
          ecx: view.getUint32(at + CPUID.ecx, true),
          edx: view.getUint32(at + CPUID.edx, true),
        });
      }
      return entries;
    }
    throw new KvmError('KVM_GET_SUPPORTED_CPUID', 7);
  }

  /** Closes /dev/kvm (VMs created from it stay valid). */
  close(): void {
    libc().close(this.fd);
  }
}

/** Encodes CPUID entries as a struct kvm_cpuid2 for KVM_SET_CPUID2. */
export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const buffer = new Uint8Array(CPUID.headerSize + entries.length * CPUID.entrySize);
  const view = new DataView(buffer.buffer);
  view.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const at = CPUID.headerSize + i * CPUID.entrySize;
    view.setUint32(at + CPUID.function, e.function, true);
    view.setUint32(at + CPUID.index, e.index, true);
    view.setUint32(at + CPUID.flags, e.flags, true);
    view.setUint32(at + CPUID.eax, e.eax >>> 0, true);
    view.setUint32(at + CPUID.ebx, e.ebx >>> 0, true);
    view.setUint32(at + CPUID.ecx, e.ecx >>> 0, true);
    view.setUint32(at + CPUID.edx, e.edx >>> 0, true);
  });
  return buffer;
}

/** How the host provides KVM, which decides the workarounds the VMM applies. */
export interface HostVirtualization {
  /** The CPU has VMX or SVM and KVM uses it: guests run at native speed. */
  readonly hardware: boolean;
  /** /dev/kvm is the paravirtual kvm_pvm: guest ring-0 code runs in KVM's instruction emulator. */
  readonly pvm: boolean;
  /** /dev/kvm exists. */
  readonly kvm: boolean;
}

/** Tells how this host provides KVM (from /proc/cpuinfo and /sys/module). */
export function hostVirtualization(): HostVirtualization {
  const pvm = existsSync('/sys/module/kvm_pvm');
  let flags = false;
  try {
    flags = /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    flags = false;
  }
  return { hardware: flags && !pvm, pvm, kvm: existsSync('/dev/kvm') };
}
