import type { GuestMemory } from '@virtio-ts/virtqueue';
import type { RamBlock } from '../platform/layout.js';
import { LOW } from '../platform/layout.js';
import { e820Map } from './e820.js';
import { HDR, identifyKernel, setupHeaderInfo } from './kernel-image.js';

/** A Linux boot: kernel, optional initramfs, command line. */
export interface LinuxBoot {
  /** A bzImage or an ELF vmlinux. */
  readonly kernel: Uint8Array;
  /** The initramfs (any format the kernel unpacks). */
  readonly initrd?: Uint8Array;
  /** The kernel command line. */
  readonly cmdline: string;
  /** Decompress a bzImage's payload on the host where possible (default true). */
  readonly decompressOnHost?: boolean;
}

/** What the platform tells the loader. */
export interface LinuxPlatform {
  /** Guest RAM, the block at address 0 first; the kernel, initramfs and boot data are placed in it. */
  readonly ramBlocks: readonly RamBlock[];
  /** Where the ACPI RSDP is, handed to the kernel in boot_params.acpi_rsdp_addr. */
  readonly rsdpAddress: number;
  /** Ranges the e820 map must mark reserved (such as ECAM). */
  readonly reserved: readonly { start: number; size: number }[];
}

/** boot_params offsets outside the setup header (arch/x86/include/uapi/asm/bootparam.h). */
const BP = {
  acpiRsdpAddr: 0x070,
  extRamdiskImage: 0x0c0,
  extRamdiskSize: 0x0c4,
  extCmdLinePtr: 0x0c8,
  e820Entries: 0x1e8,
  e820Table: 0x2d0,
  e820Max: 128,
} as const;

const LOADED_HIGH = 0x01;
const CAN_USE_HEAP = 0x80;
const PAGE = 0x1000;
/** Where a bzImage's protected-mode part goes when it decompresses itself. */
const BZIMAGE_LOAD_ADDRESS = 0x100_0000;

function fits(ram: readonly RamBlock[], address: number, size: number): boolean {
  return ram.some((b) => address >= b.guestAddress && address + size <= b.guestAddress + b.size);
}

/**
 * Loads a Linux kernel for the 64-bit boot protocol (Documentation/arch/x86/boot.rst,
 * "64-bit Boot Protocol"): the kernel image, the initramfs at the top of low
 * RAM, the command line, and boot_params (the "zero page") with the setup
 * header, the e820 map and the RSDP address. Returns where the vCPU starts:
 * RIP at the kernel's 64-bit entry and RSI at boot_params.
 */
export function loadLinux(memory: GuestMemory, boot: LinuxBoot, platform: LinuxPlatform): { rip: number; rsi: number } {
  const image = identifyKernel(boot.kernel, { decompress: boot.decompressOnHost !== false });
  const info = setupHeaderInfo(image.setupHeader);
  const ram = platform.ramBlocks;
  const low = ram[0] as RamBlock;

  let entry: number;
  let kernelEnd: number;
  if (image.kind === 'elf') {
    kernelEnd = 0;
    for (const s of image.elf.segments) {
      if (!fits(ram, s.address, s.memorySize)) {
        throw new RangeError(`kernel segment at 0x${s.address.toString(16)} (${s.memorySize} bytes) is outside guest RAM: use more memory`);
      }
      memory.write(s.address, s.data);
      if (s.memorySize > s.data.length) memory.fill(s.address + s.data.length, s.memorySize - s.data.length, 0);
      kernelEnd = Math.max(kernelEnd, s.address + s.memorySize);
    }
    entry = image.elf.entry;
  } else {
    const load = image.prefAddress > 0 ? image.prefAddress : BZIMAGE_LOAD_ADDRESS;
    const size = Math.max(image.protectedMode.length, image.initSize);
    if (!fits(ram, load, size)) throw new RangeError(`the kernel needs ${Math.ceil((load + size) / 2 ** 20)} MiB of RAM to decompress itself: use more memory`);
    memory.write(load, image.protectedMode);
    kernelEnd = load + size;
    entry = load + 0x200;
  }
  kernelEnd = Math.max(kernelEnd, BZIMAGE_LOAD_ADDRESS + info.initSize);

  const cmdline = new TextEncoder().encode(boot.cmdline);
  if (cmdline.length > Math.min(info.cmdlineSize, LOW.cmdlineMax - 1)) {
    throw new RangeError(`kernel command line is ${cmdline.length} bytes; this kernel accepts at most ${info.cmdlineSize}`);
  }
  memory.fill(LOW.cmdline, cmdline.length + 1, 0);
  memory.write(LOW.cmdline, cmdline);

  let initrdAddress = 0;
  const initrdSize = boot.initrd?.length ?? 0;
  if (boot.initrd !== undefined && initrdSize > 0) {
    const top = Math.min(low.guestAddress + low.size, info.initrdAddrMax + 1);
    initrdAddress = Math.floor((top - initrdSize) / PAGE) * PAGE;
    if (initrdAddress < kernelEnd) {
      throw new RangeError(`initrd (${Math.ceil(initrdSize / 2 ** 20)} MiB) does not fit in guest RAM above the kernel: use more memory`);
    }
    memory.write(initrdAddress, boot.initrd);
  }

  const zp = LOW.zeroPage;
  memory.fill(zp, PAGE, 0);
  if (image.setupHeader !== undefined) {
    memory.write(zp + HDR.start, image.setupHeader);
  } else {
    memory.setU16(zp + HDR.bootFlag, 0xaa55);
    memory.setU32(zp + HDR.magic, 0x53726448);
    memory.setU16(zp + HDR.version, info.version);
    memory.setU32(zp + HDR.kernelAlignment, 0x20_0000);
  }
  memory.setU8(zp + HDR.typeOfLoader, 0xff);
  memory.setU8(zp + HDR.loadflags, memory.getU8(zp + HDR.loadflags) | LOADED_HIGH | CAN_USE_HEAP);
  memory.setU16(zp + HDR.heapEndPtr, 0xfe00);
  memory.setU32(zp + HDR.cmdLinePtr, LOW.cmdline);
  memory.setU32(zp + BP.extCmdLinePtr, 0);
  memory.setU32(zp + HDR.ramdiskImage, initrdAddress);
  memory.setU32(zp + HDR.ramdiskSize, initrdSize);
  memory.setU32(zp + BP.extRamdiskImage, 0);
  memory.setU32(zp + BP.extRamdiskSize, 0);
  memory.setU64(zp + BP.acpiRsdpAddr, BigInt(platform.rsdpAddress));

  const e820 = e820Map(ram, platform.reserved);
  if (e820.length > BP.e820Max) throw new RangeError('too many e820 entries');
  memory.setU8(zp + BP.e820Entries, e820.length);
  e820.forEach((e, i) => {
    const at = zp + BP.e820Table + i * 20;
    memory.setU64(at, BigInt(e.address));
    memory.setU64(at + 8, BigInt(e.size));
    memory.setU32(at + 16, e.type);
  });
  return { rip: entry, rsi: zp };
}
