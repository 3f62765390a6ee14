/**
 * A small encoder for the ACPI Machine Language (ACPI 6.5, chapter 20): just
 * the terms the VMM's DSDT needs: scopes, devices, names, methods returning a
 * value, integers, strings, buffers, packages and resource templates (chapter
 * 6.4). Every term encodes itself to bytes; lengths are computed from the
 * encoded children, so a tree is built bottom-up and encoded once.
 */

/** Anything that encodes to AML bytes. */
export interface AmlTerm {
  /** The term's complete AML encoding: opcode, PkgLength where the term has one, then its contents. */
  encode(): Uint8Array;
}

function bytes(...parts: (Uint8Array | readonly number[])[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeAll(terms: readonly AmlTerm[]): Uint8Array {
  return bytes(...terms.map((t) => t.encode()));
}

/**
 * PkgLength (20.2.4): the length of itself plus `contentLength`, in one byte
 * below 64 or in 2-4 bytes (low nibble first, then whole bytes).
 */
export function pkgLength(contentLength: number): Uint8Array {
  if (contentLength + 1 < 0x40) return Uint8Array.of(contentLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = contentLength + 1 + extra;
    if (total < 1 << (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0x0f);
      for (let i = 0; i < extra; i++) out[1 + i] = (total >> (4 + 8 * i)) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML package of ${contentLength} bytes is too long`);
}

/**
 * A NameString (20.2.2): an optional root (\) or parent (^) prefix and one or
 * more 4-character segments separated by dots, each padded with '_'.
 */
export function nameString(name: string): Uint8Array {
  let prefix: number[] = [];
  let rest = name;
  if (rest.startsWith('\\')) {
    prefix = [0x5c];
    rest = rest.slice(1);
  }
  while (rest.startsWith('^')) {
    prefix.push(0x5e);
    rest = rest.slice(1);
  }
  const segments = rest === '' ? [] : rest.split('.');
  const encoded = segments.map((s) => {
    if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(s)) throw new RangeError(`"${s}" is not an ACPI name segment`);
    return [...s.padEnd(4, '_')].map((ch) => ch.charCodeAt(0));
  });
  if (encoded.length === 0) return bytes(prefix, [0x00]);
  if (encoded.length === 1) return bytes(prefix, encoded[0] as number[]);
  if (encoded.length === 2) return bytes(prefix, [0x2e], ...encoded);
  return bytes(prefix, [0x2f, encoded.length], ...encoded);
}

/** An Integer (20.2.3): Zero, One, Ones or the smallest Byte/Word/DWord/QWord constant. */
export class AmlInteger implements AmlTerm {
  /** Holds `value`, an unsigned integer of at most 64 bits (checked when encoded). */
  constructor(readonly value: bigint | number) {}
  /**
   * Throws a RangeError for a value outside 0..2^64-1.
   * @inheritDoc
   */
  encode(): Uint8Array {
    const v = BigInt(this.value);
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`AML integer ${v} is out of range`);
    if (v === 0n) return Uint8Array.of(0x00);
    if (v === 1n) return Uint8Array.of(0x01);
    const le = (n: number): number[] => Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
    if (v <= 0xffn) return bytes([0x0a], le(1));
    if (v <= 0xffffn) return bytes([0x0b], le(2));
    if (v <= 0xffff_ffffn) return bytes([0x0c], le(4));
    return bytes([0x0e], le(8));
  }
}

/** A String constant (20.2.3): ASCII, NUL-terminated. */
export class AmlString implements AmlTerm {
  /** Holds `value`, which must be 7-bit ASCII without NUL (checked when encoded). */
  constructor(readonly value: string) {}
  /**
   * Throws a RangeError for a string that is not 7-bit ASCII.
   * @inheritDoc
   */
  encode(): Uint8Array {
    if (!/^[\x01-\x7f]*$/.test(this.value)) throw new RangeError(`AML string "${this.value}" is not 7-bit ASCII`);
    return bytes([0x0d], [...this.value].map((c) => c.charCodeAt(0)), [0x00]);
  }
}

/**
 * A compressed EISA ID as an integer: "PNP0A08" packs three letters into 15
 * bits and four hex digits into 16, byte-swapped as _HID expects (6.1.5).
 */
export function eisaId(id: string): AmlInteger {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`"${id}" is not an EISA ID`);
  const letter = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (letter(0) << 10) | (letter(1) << 5) | letter(2);
  const product = parseInt(id.slice(3), 16);
  const value = ((vendor >> 8) & 0xff) | ((vendor & 0xff) << 8) | (((product >> 8) & 0xff) << 16) | ((product & 0xff) << 24);
  return new AmlInteger(value >>> 0);
}

/** A Buffer (20.2.5.4) holding raw bytes. */
export class AmlBuffer implements AmlTerm {
  /** Holds `data`, the buffer's bytes; the BufferSize is their count. */
  constructor(readonly data: Uint8Array) {}
  /** @inheritDoc */
  encode(): Uint8Array {
    const content = bytes(new AmlInteger(this.data.length).encode(), this.data);
    return bytes([0x11], pkgLength(content.length), content);
  }
}

/** A Package (20.2.5.4) of data objects. */
export class AmlPackage implements AmlTerm {
  /** Holds `elements`, at most 255 (NumElements is one byte; checked when encoded). */
  constructor(readonly elements: readonly AmlTerm[]) {}
  /**
   * Throws a RangeError for more than 255 elements.
   * @inheritDoc
   */
  encode(): Uint8Array {
    if (this.elements.length > 255) throw new RangeError('AML package has more than 255 elements');
    const content = bytes([this.elements.length], encodeAll(this.elements));
    return bytes([0x12], pkgLength(content.length), content);
  }
}

/** Name(name, value) (20.2.5.1). */
export class AmlName implements AmlTerm {
  /** Binds `name` (a NameString, see {@link nameString}) to the data object `value`. */
  constructor(readonly name: string, readonly value: AmlTerm) {}
  /** @inheritDoc */
  encode(): Uint8Array {
    return bytes([0x08], nameString(this.name), this.value.encode());
  }
}

/** Scope(name) { terms } (20.2.5.1). */
export class AmlScope implements AmlTerm {
  /** Opens the existing namespace `name` (e.g. `\_SB`) for `terms`. */
  constructor(readonly name: string, readonly terms: readonly AmlTerm[]) {}
  /** @inheritDoc */
  encode(): Uint8Array {
    const content = bytes(nameString(this.name), encodeAll(this.terms));
    return bytes([0x10], pkgLength(content.length), content);
  }
}

/** Device(name) { terms } (20.2.5.2). */
export class AmlDevice implements AmlTerm {
  /** Declares the device object `name` holding `terms` (its _HID, _CRS and the like). */
  constructor(readonly name: string, readonly terms: readonly AmlTerm[]) {}
  /** @inheritDoc */
  encode(): Uint8Array {
    const content = bytes(nameString(this.name), encodeAll(this.terms));
    return bytes([0x5b, 0x82], pkgLength(content.length), content);
  }
}

/** Method(name, 0, NotSerialized) { Return(value) }: a method that returns a constant. */
export class AmlReturningMethod implements AmlTerm {
  /** Declares the method `name` (e.g. `_STA`) that returns `value`. */
  constructor(readonly name: string, readonly value: AmlTerm) {}
  /** @inheritDoc */
  encode(): Uint8Array {
    const content = bytes(nameString(this.name), [0x00], [0xa4], this.value.encode());
    return bytes([0x14], pkgLength(content.length), content);
  }
}

/** One descriptor of a resource template (6.4). */
export interface ResourceDescriptor {
  /** The descriptor's bytes, small or large item form, without the End Tag that closes the template. */
  encode(): Uint8Array;
}

function le(value: number | bigint, size: number): number[] {
  const v = BigInt(value);
  return Array.from({ length: size }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
}

function largeItem(tag: number, body: number[]): Uint8Array {
  return Uint8Array.from([tag, ...le(body.length, 2), ...body]);
}

/** Memory32Fixed(ReadWrite, base, length) (6.4.3.4). */
export function memory32Fixed(base: number, length: number, writable = true): ResourceDescriptor {
  return { encode: () => largeItem(0x86, [writable ? 1 : 0, ...le(base, 4), ...le(length, 4)]) };
}

/**
 * An address space descriptor (6.4.3.5): QWord (0x8A), DWord (0x87) or Word
 * (0x88) form of a memory, I/O or bus-number range a bridge produces.
 */
export function addressSpace(
  width: 'qword' | 'dword' | 'word',
  kind: 'memory' | 'io' | 'bus',
  min: number | bigint,
  length: number | bigint,
): ResourceDescriptor {
  const size = width === 'qword' ? 8 : width === 'dword' ? 4 : 2;
  const tag = width === 'qword' ? 0x8a : width === 'dword' ? 0x87 : 0x88;
  const resourceType = kind === 'memory' ? 0 : kind === 'io' ? 1 : 2;
  // General flags: producer, fixed minimum and maximum (MinFixed, MaxFixed), positive decode.
  const generalFlags = 0x0c;
  // Type-specific: memory read-write and non-cacheable; I/O both ISA and non-ISA ranges.
  const typeFlags = kind === 'memory' ? 0x01 : kind === 'io' ? 0x03 : 0x00;
  const max = BigInt(min) + BigInt(length) - 1n;
  return {
    encode: () =>
      largeItem(tag, [
        resourceType,
        generalFlags,
        typeFlags,
        ...le(0, size),
        ...le(min, size),
        ...le(max, size),
        ...le(0, size),
        ...le(length, size),
      ]),
  };
}

/** Interrupt(ResourceConsumer, Level|Edge, ActiveHigh, Exclusive) { gsi } (6.4.3.6). */
export function extendedInterrupt(gsi: number, trigger: 'level' | 'edge'): ResourceDescriptor {
  const flags = 0x01 | (trigger === 'edge' ? 0x02 : 0x00);
  return { encode: () => largeItem(0x89, [flags, 1, ...le(gsi, 4)]) };
}

/** IO(Decode16, base, base, 1, length) (6.4.2.5). */
export function ioPort(base: number, length: number): ResourceDescriptor {
  return { encode: () => Uint8Array.from([0x47, 0x01, ...le(base, 2), ...le(base, 2), 0x01, length]) };
}

/** IRQNoFlags() { irq } (6.4.2.1): an edge-triggered, active-high ISA IRQ. */
export function isaIrq(irq: number): ResourceDescriptor {
  return { encode: () => Uint8Array.from([0x22, ...le(1 << irq, 2)]) };
}

/** ResourceTemplate() { descriptors }: a Buffer of descriptors closed by an End Tag (6.4.2.9). */
export function resourceTemplate(descriptors: readonly ResourceDescriptor[]): AmlBuffer {
  return new AmlBuffer(bytes(...descriptors.map((d) => d.encode()), [0x79, 0x00]));
}
