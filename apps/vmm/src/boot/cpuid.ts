import type { CpuidEntry } from '../kvm/kvm.js';

const LEAF1_ECX_CX16 = 1 << 13;
const LEAF1_ECX_XSAVE = 1 << 26;
const LEAF1_ECX_OSXSAVE = 1 << 27;
const LEAF1_ECX_HYPERVISOR = 1 << 31;
const LEAF7_EBX_SMAP = 1 << 20;

/** How to adjust the host's supported CPUID for one vCPU. */
export interface CpuidOptions {
  /** The vCPU's APIC ID. */
  readonly apicId: number;
  /** Number of vCPUs (leaf 1's logical processor count). */
  readonly cpus: number;
  /**
   * Hide the features kvm_pvm's instruction emulator cannot execute in guest
   * ring 0: CMPXCHG16B, XSAVE (xrstor) and SMAP (clac/stac). A stock kernel
   * then takes the paths that avoid them, with no command-line workarounds.
   */
  readonly emulatorSafe: boolean;
}

/** The CPUID a vCPU sees: KVM's supported leaves with its APIC ID, the hypervisor bit and the requested masks. */
export function vcpuCpuid(supported: readonly CpuidEntry[], options: CpuidOptions): CpuidEntry[] {
  return supported.map((leaf) => {
    const e = { ...leaf };
    if (e.function === 1) {
      e.ebx = (e.ebx & 0x0000ffff) | ((options.cpus & 0xff) << 16) | ((options.apicId & 0xff) << 24);
      e.ecx |= LEAF1_ECX_HYPERVISOR;
      if (options.emulatorSafe) e.ecx &= ~(LEAF1_ECX_CX16 | LEAF1_ECX_XSAVE | LEAF1_ECX_OSXSAVE);
    } else if (e.function === 7 && e.index === 0 && options.emulatorSafe) {
      e.ebx &= ~LEAF7_EBX_SMAP;
    } else if (e.function === 0xb || e.function === 0x1f) {
      e.edx = options.apicId;
    }
    e.ecx >>>= 0;
    e.ebx >>>= 0;
    return e;
  });
}
