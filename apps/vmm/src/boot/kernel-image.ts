import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { isElf, parseElf, type ElfImage } from './elf.js';

/** Offsets in the bzImage's setup header (Documentation/arch/x86/boot.rst). */
export const HDR = {
  start: 0x1f1,
  setupSects: 0x1f1,
  bootFlag: 0x1fe,
  jump: 0x200,
  magic: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadflags: 0x211,
  code32Start: 0x214,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  heapEndPtr: 0x224,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  kernelAlignment: 0x230,
  xloadflags: 0x236,
  cmdlineSize: 0x238,
  payloadOffset: 0x248,
  payloadLength: 0x24c,
  prefAddress: 0x258,
  initSize: 0x260,
} as const;

/** xloadflags bit: the kernel has a 64-bit entry point at its load address + 0x200. */
const XLF_KERNEL_64 = 1;
const HDRS = 0x53726448;

/** A kernel ready to load: either an ELF image or a bzImage's protected-mode part with its own decompressor. */
export type KernelImage =
  | {
      readonly kind: 'elf';
      readonly elf: ElfImage;
      /** The bzImage setup header it came from (bytes 0x1f1 up to the header's end), when it came from one. */
      readonly setupHeader: Uint8Array | undefined;
      /** How it was obtained, for the log. */
      readonly source: string;
    }
  | {
      readonly kind: 'bzimage';
      /** The protected-mode kernel (the decompressor and the compressed payload). */
      readonly protectedMode: Uint8Array;
      readonly setupHeader: Uint8Array;
      readonly prefAddress: number;
      readonly initSize: number;
      readonly source: string;
    };

/** The fields of a bzImage setup header the loader needs. */
export interface SetupHeaderInfo {
  /** The boot protocol version (0x0206 is 2.06); fields newer than it are absent. */
  readonly version: number;
  /** Longest command line the kernel takes, in bytes without the NUL (cmdline_size). */
  readonly cmdlineSize: number;
  /** Highest address the initramfs may occupy (initrd_addr_max). */
  readonly initrdAddrMax: number;
  /** Memory the kernel needs from its load address to decompress and start itself (init_size), or 0. */
  readonly initSize: number;
}

/** Reads the loader-relevant fields from a setup header copy (offsets relative to 0x1f1). */
export function setupHeaderInfo(header: Uint8Array | undefined): SetupHeaderInfo {
  if (header === undefined) return { version: 0x020f, cmdlineSize: 2047, initrdAddrMax: 0x7fff_ffff, initSize: 0 };
  const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const at = (offset: number): number => offset - HDR.start;
  const version = v.getUint16(at(HDR.version), true);
  return {
    version,
    cmdlineSize: version >= 0x0206 ? v.getUint32(at(HDR.cmdlineSize), true) : 255,
    initrdAddrMax: version >= 0x0203 ? v.getUint32(at(HDR.initrdAddrMax), true) : 0x37ff_ffff,
    initSize: version >= 0x020a && header.length >= at(HDR.initSize) + 4 ? v.getUint32(at(HDR.initSize), true) : 0,
  };
}

/**
 * Decompresses a bzImage payload when the host can: gzip with Node's zlib,
 * xz with the `xz` program (xz-utils; Node has no xz decoder). Returns
 * undefined for other formats or when `xz` is missing.
 */
function decompressPayload(payload: Uint8Array): { elf: Uint8Array; format: string } | undefined {
  if (payload[0] === 0x1f && payload[1] === 0x8b) return { elf: gunzipSync(payload), format: 'gzip' };
  const xzMagic = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
  if (xzMagic.every((b, i) => payload[i] === b)) {
    try {
      // The payload ends with the uncompressed size (4 bytes) after the xz stream; --single-stream ignores it.
      const out = execFileSync('xz', ['--decompress', '--stdout', '--single-stream'], { input: payload, maxBuffer: 1 << 30 });
      return { elf: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), format: 'xz' };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Identifies a kernel file. An ELF (vmlinux) is used as it is. A bzImage's
 * compressed payload is an ELF vmlinux: where the host can decompress it,
 * that ELF is booted directly (skipping the guest-side decompressor, which
 * is slow where guest ring-0 code is emulated); otherwise the bzImage is
 * booted through its own 64-bit entry point. Throws an Error with a one-line
 * reason for anything else.
 */
export function identifyKernel(bytes: Uint8Array, options: { decompress?: boolean } = {}): KernelImage {
  if (isElf(bytes)) return { kind: 'elf', elf: parseElf(bytes), setupHeader: undefined, source: 'ELF' };
  if (bytes.length < 0x300) throw new Error('kernel is neither a bzImage nor an ELF vmlinux (file too small)');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(HDR.magic, true) !== HDRS || v.getUint16(HDR.bootFlag, true) !== 0xaa55) {
    throw new Error('kernel is neither a bzImage nor an ELF vmlinux (no "HdrS" setup header)');
  }
  const version = v.getUint16(HDR.version, true);
  if (version < 0x020c) throw new Error(`kernel boot protocol ${version >> 8}.${version & 0xff} is too old: 2.12 or newer is needed for 64-bit entry`);
  if ((v.getUint16(HDR.xloadflags, true) & XLF_KERNEL_64) === 0) throw new Error('bzImage has no 64-bit entry point (XLF_KERNEL_64 is clear)');
  const headerEnd = HDR.jump + 2 + (bytes[HDR.jump + 1] as number);
  const setupHeader = bytes.slice(HDR.start, headerEnd);
  const setupSects = (bytes[HDR.setupSects] as number) || 4;
  const pmStart = (setupSects + 1) * 512;
  if (pmStart >= bytes.length) throw new Error('bzImage is truncated: no protected-mode kernel after the setup sectors');
  const protectedMode = bytes.subarray(pmStart);
  const payloadOffset = v.getUint32(HDR.payloadOffset, true);
  const payloadLength = v.getUint32(HDR.payloadLength, true);
  if (options.decompress !== false && payloadLength > 0 && payloadOffset + payloadLength <= protectedMode.length) {
    const payload = decompressPayload(protectedMode.subarray(payloadOffset, payloadOffset + payloadLength));
    if (payload !== undefined && isElf(payload.elf)) {
      return { kind: 'elf', elf: parseElf(payload.elf, 'the bzImage payload'), setupHeader, source: `bzImage (${payload.format} payload decompressed on the host)` };
    }
  }
  return {
    kind: 'bzimage',
    protectedMode,
    setupHeader,
    prefAddress: Number(v.getBigUint64(HDR.prefAddress, true)),
    initSize: v.getUint32(HDR.initSize, true),
    source: 'bzImage (decompressed by its own 64-bit entry code)',
  };
}
