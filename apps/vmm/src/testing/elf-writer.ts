/**
 * Writes a minimal x86-64 ELF64 executable: a header, one PT_LOAD program
 * header per segment (physical address = virtual address) and the segments'
 * bytes. Enough for the VMM's kernel loader, so a purpose-built guest can go
 * through the same path as a vmlinux.
 */
export function writeElf(entry: number, segments: readonly { readonly address: number; readonly bytes: Uint8Array }[]): Uint8Array {
  const headerSize = 64;
  const phSize = 56;
  let offset = headerSize + phSize * segments.length;
  const placed = segments.map((s) => {
    const at = offset;
    offset += s.bytes.length;
    return { ...s, offset: at };
  });
  const out = new Uint8Array(offset);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 62, true); // EM_X86_64
  v.setUint32(20, 1, true);
  v.setBigUint64(24, BigInt(entry), true);
  v.setBigUint64(32, BigInt(headerSize), true);
  v.setUint16(52, headerSize, true);
  v.setUint16(54, phSize, true);
  v.setUint16(56, segments.length, true);
  placed.forEach((s, i) => {
    const at = headerSize + i * phSize;
    v.setUint32(at, 1, true); // PT_LOAD
    v.setUint32(at + 4, 7, true); // RWX
    v.setBigUint64(at + 8, BigInt(s.offset), true);
    v.setBigUint64(at + 16, BigInt(s.address), true);
    v.setBigUint64(at + 24, BigInt(s.address), true);
    v.setBigUint64(at + 32, BigInt(s.bytes.length), true);
    v.setBigUint64(at + 40, BigInt(s.bytes.length), true);
    v.setBigUint64(at + 48, 0x1000n, true);
    out.set(s.bytes, s.offset);
  });
  return out;
}
