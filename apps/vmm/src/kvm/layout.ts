/**
 * Byte offsets inside the KVM structures of <linux/kvm.h> (x86-64) that the
 * VMM reads and writes through DataViews. Only the fields used are listed.
 */

/** struct kvm_run: the per-vCPU shared page (mmap of the vCPU fd). */
export const RUN = {
  immediateExit: 1,
  exitReason: 8,
  /** The exit-specific union starts here. */
  union: 32,
  io: { direction: 32, size: 33, port: 34, count: 36, dataOffset: 40 },
  mmio: { physAddr: 32, data: 40, len: 48, isWrite: 52 },
  systemEvent: { type: 32, ndata: 36, data: 40 },
  internal: { suberror: 32, ndata: 36, data: 40 },
  failEntry: { reason: 32, cpu: 40 },
} as const;

/** kvm_run.exit_reason values. */
export const EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

/** kvm_run.system_event.type values. */
export const SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3 } as const;

/** struct kvm_regs: 18 u64 in this order. */
export const REGS_SIZE = 144;
/** Index (in u64 units) of each general register in struct kvm_regs. */
export const REG = {
  rax: 0, rbx: 1, rcx: 2, rdx: 3, rsi: 4, rdi: 5, rsp: 6, rbp: 7,
  r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15,
  rip: 16, rflags: 17,
} as const;

/** struct kvm_segment (24 bytes). */
export const SEGMENT = {
  size: 24,
  base: 0, limit: 8, selector: 12, type: 14, present: 15, dpl: 16, db: 17, s: 18, l: 19, g: 20, avl: 21, unusable: 22,
} as const;

/** struct kvm_sregs (312 bytes). */
export const SREGS = {
  size: 312,
  cs: 0, ds: 24, es: 48, fs: 72, gs: 96, ss: 120, tr: 144, ldt: 168,
  gdt: 192, idt: 208,
  cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264, apicBase: 272,
} as const;

/** struct kvm_cpuid2 header and struct kvm_cpuid_entry2 (40 bytes each). */
export const CPUID = {
  headerSize: 8,
  entrySize: 40,
  function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24,
} as const;

/** struct kvm_vcpu_events (64 bytes): the pending exception. */
export const VCPU_EVENTS = {
  size: 64,
  exceptionInjected: 0, exceptionNr: 1, exceptionHasErrorCode: 2, exceptionPending: 3, exceptionErrorCode: 4,
  flags: 20,
} as const;
