/**
 * A tiny x86-64 assembler for the test guests: exactly the instructions they
 * use, each encoded by hand from the Intel SDM's opcode tables (REX prefix,
 * opcode, ModRM, optional SIB and displacement, immediate), with labels for
 * forward and backward jumps. Registers are numbered as in ModRM (rax 0 ...
 * r15 15).
 */

/** 64-bit general registers by ModRM number. */
export const R = {
  rax: 0, rcx: 1, rdx: 2, rbx: 3, rsp: 4, rbp: 5, rsi: 6, rdi: 7,
  r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15,
} as const;

/** A register number. */
export type Reg = (typeof R)[keyof typeof R];

/** Condition codes for Jcc (the low nibble of 0x70+cc / 0x0F 0x80+cc). */
export const CC = { b: 0x2, ae: 0x3, e: 0x4, ne: 0x5, be: 0x6, a: 0x7 } as const;

interface Fixup {
  readonly at: number;
  readonly label: string;
  readonly size: 1 | 4;
}

/** Assembles position-dependent code to be loaded at `origin`. */
export class Assembler {
  private readonly out: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Fixup[] = [];

  /** Starts an empty program whose first byte will be loaded at guest address `origin`. */
  constructor(readonly origin: number) {}

  /** The address the next instruction will have. */
  get here(): number {
    return this.origin + this.out.length;
  }

  /** Defines `name` at the current address. */
  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.labels.set(name, this.here);
    return this;
  }

  /** The address of a defined label. */
  address(name: string): number {
    const at = this.labels.get(name);
    if (at === undefined) throw new Error(`label ${name} is not defined`);
    return at;
  }

  /** Raw bytes. */
  bytes(...values: number[]): this {
    for (const v of values) this.out.push(v & 0xff);
    return this;
  }

  private imm(value: number | bigint, size: number): this {
    let v = BigInt.asUintN(size * 8, BigInt(value));
    for (let i = 0; i < size; i++) {
      this.out.push(Number(v & 0xffn));
      v >>= 8n;
    }
    return this;
  }

  private rex(w: boolean, reg: number, base: number, force = false): void {
    const byte = 0x40 | (w ? 8 : 0) | ((reg & 8) >> 1) | ((base & 8) >> 3);
    if (byte !== 0x40 || force) this.out.push(byte);
  }

  /** ModRM (+SIB, +disp) for [base + disp] or, with `base` undefined, an absolute disp32. */
  private memory(reg: number, base: number | undefined, disp: number): void {
    if (base === undefined) {
      this.bytes(0x04 | ((reg & 7) << 3), 0x25).imm(disp, 4);
      return;
    }
    const low = base & 7;
    const mod = disp === 0 && low !== 5 ? 0 : disp >= -128 && disp <= 127 ? 1 : 2;
    this.out.push((mod << 6) | ((reg & 7) << 3) | low);
    if (low === 4) this.out.push(0x24);
    if (mod === 1) this.imm(disp, 1);
    if (mod === 2) this.imm(disp, 4);
  }

  /** mov r64, imm64 (REX.W B8+r). */
  movImm64(dst: Reg, value: number | bigint): this {
    this.rex(true, 0, dst);
    return this.bytes(0xb8 + (dst & 7)).imm(value, 8);
  }

  /** mov r32, imm32 (B8+r), zero-extending into the 64-bit register. */
  movImm32(dst: Reg, value: number): this {
    this.rex(false, 0, dst);
    return this.bytes(0xb8 + (dst & 7)).imm(value, 4);
  }

  /** mov dst, src between 64-bit registers (REX.W 89 /r). */
  movReg(dst: Reg, src: Reg): this {
    this.rex(true, src, dst);
    return this.bytes(0x89, 0xc0 | ((src & 7) << 3) | (dst & 7));
  }

  /** Load `width` bytes from [base + disp] into `dst`, zero-extended (movzx / mov). */
  load(width: 1 | 2 | 4 | 8, dst: Reg, base: Reg | undefined, disp = 0): this {
    if (width === 8) {
      this.rex(true, dst, base ?? 0);
      this.bytes(0x8b);
    } else {
      this.rex(false, dst, base ?? 0);
      if (width === 4) this.bytes(0x8b);
      else this.bytes(0x0f, width === 1 ? 0xb6 : 0xb7);
    }
    this.memory(dst, base, disp);
    return this;
  }

  /** Store the low `width` bytes of `src` to [base + disp]. */
  store(width: 1 | 2 | 4 | 8, base: Reg | undefined, disp: number, src: Reg): this {
    if (width === 2) this.bytes(0x66);
    // A byte store of sil/dil/spl/bpl or r8b-r15b needs a REX prefix even without extension bits.
    this.rex(width === 8, src, base ?? 0, width === 1 && src >= 4);
    this.bytes(width === 1 ? 0x88 : 0x89);
    this.memory(src, base, disp);
    return this;
  }

  /** add r64, imm32 (REX.W 81 /0). */
  addImm(dst: Reg, value: number): this {
    this.rex(true, 0, dst);
    return this.bytes(0x81, 0xc0 | (dst & 7)).imm(value, 4);
  }

  /** cmp r32, imm32 (81 /7). */
  cmpImm32(dst: Reg, value: number): this {
    this.rex(false, 0, dst);
    return this.bytes(0x81, 0xf8 | (dst & 7)).imm(value, 4);
  }

  /** cmp a, b between 32-bit registers (39 /r). */
  cmpReg32(a: Reg, b: Reg): this {
    this.rex(false, b, a);
    return this.bytes(0x39, 0xc0 | ((b & 7) << 3) | (a & 7));
  }

  /** cmp r64, [base + disp] (REX.W 3B /r). */
  cmpMem64(reg: Reg, base: Reg, disp = 0): this {
    this.rex(true, reg, base);
    this.bytes(0x3b);
    this.memory(reg, base, disp);
    return this;
  }

  /** and r32, imm32 (81 /4). */
  andImm32(dst: Reg, value: number): this {
    this.rex(false, 0, dst);
    return this.bytes(0x81, 0xe0 | (dst & 7)).imm(value, 4);
  }

  /** and qword [base + disp], imm32 sign-extended (REX.W 81 /4). */
  andMem64Imm(base: Reg, disp: number, value: number): this {
    this.rex(true, 0, base);
    this.bytes(0x81);
    this.memory(4, base, disp);
    return this.imm(value, 4);
  }

  /** inc qword [base + disp] (REX.W FF /0). */
  incMem64(base: Reg, disp = 0): this {
    this.rex(true, 0, base);
    this.bytes(0xff);
    this.memory(0, base, disp);
    return this;
  }

  /** shl r32, imm8 (C1 /4). */
  shlImm32(dst: Reg, count: number): this {
    this.rex(false, 0, dst);
    return this.bytes(0xc1, 0xe0 | (dst & 7), count);
  }

  /** shr r64, cl (REX.W D3 /5). */
  shrCl64(dst: Reg): this {
    this.rex(true, 0, dst);
    return this.bytes(0xd3, 0xe8 | (dst & 7));
  }

  /** dec r32 (FF /1). */
  dec32(dst: Reg): this {
    this.rex(false, 0, dst);
    return this.bytes(0xff, 0xc8 | (dst & 7));
  }

  /** test r32, r32 (85 /r). */
  test32(a: Reg, b: Reg): this {
    this.rex(false, b, a);
    return this.bytes(0x85, 0xc0 | ((b & 7) << 3) | (a & 7));
  }

  /** cmp al, imm8 (3C ib). */
  cmpAl(value: number): this {
    return this.bytes(0x3c, value);
  }

  /** add al, imm8 (04 ib). */
  addAl(value: number): this {
    return this.bytes(0x04, value);
  }

  /** mov al, imm8 (B0 ib). */
  movAl(value: number): this {
    return this.bytes(0xb0, value);
  }

  /** out dx, al / ax / eax (EE / 66 EF / EF). */
  outDx(width: 1 | 2 | 4): this {
    if (width === 1) return this.bytes(0xee);
    if (width === 2) return this.bytes(0x66, 0xef);
    return this.bytes(0xef);
  }

  /** in al / ax / eax, dx (EC / 66 ED / ED). */
  inDx(width: 1 | 2 | 4): this {
    if (width === 1) return this.bytes(0xec);
    if (width === 2) return this.bytes(0x66, 0xed);
    return this.bytes(0xed);
  }

  /** push r64 (50+r). */
  push(reg: Reg): this {
    this.rex(false, 0, reg);
    return this.bytes(0x50 + (reg & 7));
  }

  /** pop r64 (58+r). */
  pop(reg: Reg): this {
    this.rex(false, 0, reg);
    return this.bytes(0x58 + (reg & 7));
  }

  /** lidt [abs32] (0F 01 /3). */
  lidt(address: number): this {
    this.bytes(0x0f, 0x01);
    this.memory(3, undefined, address);
    return this;
  }

  /** sti (FB): sets IF, so interrupts are taken after the next instruction. */
  sti(): this {
    return this.bytes(0xfb);
  }

  /** cli (FA): clears IF, masking maskable interrupts. */
  cli(): this {
    return this.bytes(0xfa);
  }

  /** hlt (F4): halts the vCPU until the next interrupt. */
  hlt(): this {
    return this.bytes(0xf4);
  }

  /** ret (C3): near return to the address on the stack. */
  ret(): this {
    return this.bytes(0xc3);
  }

  /** iretq (REX.W CF): 64-bit return from an interrupt handler. */
  iretq(): this {
    return this.bytes(0x48, 0xcf);
  }

  /** jmp rel32 to a label (E9 cd). */
  jmp(label: string): this {
    this.bytes(0xe9);
    return this.fixup(label, 4);
  }

  /** call rel32 to a label (E8 cd). */
  call(label: string): this {
    this.bytes(0xe8);
    return this.fixup(label, 4);
  }

  /** Jcc rel32 to a label (0F 80+cc cd). */
  jcc(cc: number, label: string): this {
    this.bytes(0x0f, 0x80 + cc);
    return this.fixup(label, 4);
  }

  private fixup(label: string, size: 1 | 4): this {
    this.fixups.push({ at: this.out.length, label, size });
    return this.imm(0, size);
  }

  /** Resolves jumps and returns the machine code. */
  assemble(): Uint8Array {
    const code = Uint8Array.from(this.out);
    const view = new DataView(code.buffer);
    for (const f of this.fixups) {
      const target = this.address(f.label);
      const rel = target - (this.origin + f.at + f.size);
      if (f.size === 1) {
        if (rel < -128 || rel > 127) throw new RangeError(`jump to ${f.label} does not fit in 8 bits`);
        view.setInt8(f.at, rel);
      } else {
        view.setInt32(f.at, rel, true);
      }
    }
    return code;
  }
}
