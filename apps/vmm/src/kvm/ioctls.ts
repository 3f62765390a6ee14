/**
 * KVM ioctl request numbers, computed from the _IO/_IOR/_IOW/_IOWR encodings
 * of <linux/kvm.h> (x86-64): direction in bits 30-31, argument size in bits
 * 16-29, the type 0xAE (KVMIO) in bits 8-15, the number in bits 0-7.
 */
const KVMIO = 0xae;
const NONE = 0;
const WRITE = 1;
const READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}

/** Sizes of the structures the ioctls below carry (see layout.ts). */
const SIZE = {
  userspaceMemoryRegion: 32,
  irqLevel: 8,
  irqfd: 32,
  pitConfig: 64,
  ioeventfd: 64,
  msi: 32,
  regs: 144,
  sregs: 312,
  cpuid2: 8,
  vcpuEvents: 64,
  u64: 8,
  msrs: 8,
} as const;

/** The ioctls the VMM issues. */
export const KVM = {
  GET_API_VERSION: ioc(NONE, 0x00, 0),
  CREATE_VM: ioc(NONE, 0x01, 0),
  CHECK_EXTENSION: ioc(NONE, 0x03, 0),
  GET_VCPU_MMAP_SIZE: ioc(NONE, 0x04, 0),
  GET_SUPPORTED_CPUID: ioc(READ | WRITE, 0x05, SIZE.cpuid2),
  CREATE_VCPU: ioc(NONE, 0x41, 0),
  SET_USER_MEMORY_REGION: ioc(WRITE, 0x46, SIZE.userspaceMemoryRegion),
  SET_TSS_ADDR: ioc(NONE, 0x47, 0),
  SET_IDENTITY_MAP_ADDR: ioc(WRITE, 0x48, SIZE.u64),
  CREATE_IRQCHIP: ioc(NONE, 0x60, 0),
  IRQ_LINE: ioc(WRITE, 0x61, SIZE.irqLevel),
  IRQFD: ioc(WRITE, 0x76, SIZE.irqfd),
  CREATE_PIT2: ioc(WRITE, 0x77, SIZE.pitConfig),
  IOEVENTFD: ioc(WRITE, 0x79, SIZE.ioeventfd),
  SIGNAL_MSI: ioc(WRITE, 0xa5, SIZE.msi),
  RUN: ioc(NONE, 0x80, 0),
  GET_REGS: ioc(READ, 0x81, SIZE.regs),
  SET_REGS: ioc(WRITE, 0x82, SIZE.regs),
  GET_SREGS: ioc(READ, 0x83, SIZE.sregs),
  SET_SREGS: ioc(WRITE, 0x84, SIZE.sregs),
  SET_MSRS: ioc(WRITE, 0x89, SIZE.msrs),
  SET_CPUID2: ioc(WRITE, 0x90, SIZE.cpuid2),
  GET_VCPU_EVENTS: ioc(READ, 0x9f, SIZE.vcpuEvents),
  SET_VCPU_EVENTS: ioc(WRITE, 0xa0, SIZE.vcpuEvents),
} as const;

/** KVM_CHECK_EXTENSION capability numbers. */
export const KVM_CAP = {
  IRQCHIP: 0,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  IRQFD: 32,
  PIT2: 33,
  IOEVENTFD: 36,
  MAX_VCPUS: 66,
  SIGNAL_MSI: 77,
  IRQFD_RESAMPLE: 82,
  IMMEDIATE_EXIT: 136,
} as const;

/** The API version every KVM since Linux 2.6.22 reports. */
export const KVM_API_VERSION = 12;
