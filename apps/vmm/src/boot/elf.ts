/** One PT_LOAD segment of an ELF64 image. */
export interface ElfSegment {
  /** Physical load address (p_paddr). */
  readonly address: number;
  /** Bytes from the file (p_filesz). */
  readonly data: Uint8Array;
  /** Size in memory (p_memsz); the rest after the file bytes is zeroed. */
  readonly memorySize: number;
}

/** An ELF64 executable's loadable segments and entry point. */
export interface ElfImage {
  /** The entry point (e_entry), which the boot vCPU's RIP is set to. */
  readonly entry: number;
  /** The PT_LOAD segments, in file order. */
  readonly segments: readonly ElfSegment[];
}

const PT_LOAD = 1;
const EM_X86_64 = 62;

/** True when `bytes` starts with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/**
 * Parses an x86-64 ELF64 executable (System V gABI, ch. 4-5): the entry
 * point and PT_LOAD segments at their physical addresses. Throws an Error
 * saying what is wrong with a malformed or foreign file.
 */
export function parseElf(bytes: Uint8Array, what = 'kernel'): ElfImage {
  const fail = (why: string): never => {
    throw new Error(`${what} is not a loadable x86-64 ELF: ${why}`);
  };
  if (!isElf(bytes)) fail('no ELF magic');
  if (bytes.length < 64) fail('truncated header');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[4] !== 2 || bytes[5] !== 1) fail('not a little-endian 64-bit ELF');
  if (v.getUint16(18, true) !== EM_X86_64) fail(`machine ${v.getUint16(18, true)} is not x86-64`);
  const entry = Number(v.getBigUint64(24, true));
  const phoff = Number(v.getBigUint64(32, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  if (phentsize < 56 || phoff + phnum * phentsize > bytes.length) fail('program headers outside the file');
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (v.getUint32(at, true) !== PT_LOAD) continue;
    const offset = Number(v.getBigUint64(at + 8, true));
    const address = Number(v.getBigUint64(at + 24, true));
    const fileSize = Number(v.getBigUint64(at + 32, true));
    const memorySize = Number(v.getBigUint64(at + 40, true));
    if (offset + fileSize > bytes.length) fail(`segment ${i} extends past the end of the file`);
    if (memorySize < fileSize) fail(`segment ${i} is smaller in memory than in the file`);
    if (!Number.isSafeInteger(address + memorySize)) fail(`segment ${i} has an impossible address`);
    segments.push({ address, data: bytes.subarray(offset, offset + fileSize), memorySize });
  }
  if (segments.length === 0) fail('no loadable segments');
  return { entry, segments };
}
