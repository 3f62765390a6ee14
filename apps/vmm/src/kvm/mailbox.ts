/**
 * The shared words through which a vCPU worker hands an I/O exit to the main
 * thread and waits for its completion (Int32Array over a SharedArrayBuffer).
 * The exit's details stay in kvm_run, which both threads map: the worker is
 * blocked while the main thread reads and completes it, so nothing is copied.
 */
export const MAILBOX = {
  /** Word index of the exchange state. */
  state: 0,
  /** Word index of the stop request flag (main → worker). */
  stop: 1,
  /** Word index where the worker publishes its kernel thread id (for tgkill). */
  tid: 2,
  /** Number of words. */
  words: 4,
} as const;

/** Values of the state word. */
export const STATE = {
  /** The guest runs (or the worker handles an exit itself). */
  RUNNING: 0,
  /** An I/O or MMIO exit waits in kvm_run for the main thread. */
  EXIT: 1,
} as const;

/** The signal sent to interrupt KVM_RUN; the VMM installs a no-op handler for it. */
export const KICK_SIGNAL = 'SIGUSR2';
/** Its number on Linux x86-64. */
export const KICK_SIGNAL_NUMBER = 12;

/** Everything a vCPU worker is started with. */
export interface VcpuWorkerData {
  /** The vCPU's descriptor (KVM_CREATE_VCPU); descriptors are shared by every thread of the process. */
  readonly vcpuFd: number;
  /** Address of the vCPU's kvm_run mapping, which the main thread made and the worker views too. */
  readonly runAddress: bigint;
  /** Size of the kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE). */
  readonly runSize: number;
  /** The words laid out by {@link MAILBOX} through which exits are handed over. */
  readonly mailbox: SharedArrayBuffer;
  /** struct kvm_cpuid2 for KVM_SET_CPUID2. */
  readonly cpuid: Uint8Array;
  /** struct kvm_sregs for KVM_SET_SREGS; omitted keeps the reset state. */
  readonly sregs: Uint8Array | undefined;
  /** struct kvm_regs for KVM_SET_REGS. */
  readonly regs: Uint8Array | undefined;
  /** Work around kvm_pvm's instruction emulator (int3, fwait). */
  readonly emulatorQuirks: boolean;
}

/** Why a vCPU stopped, as the worker reports it (a structured-clone message). */
export type VcpuStop =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'shutdown' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'crash' }
  | { readonly kind: 'triple-fault' }
  | { readonly kind: 'halted' }
  | { readonly kind: 'error'; readonly message: string };
