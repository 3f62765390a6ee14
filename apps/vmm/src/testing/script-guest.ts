import { Assembler, CC, R } from './x86-asm.js';

/**
 * A purpose-built test guest: a small ring-0 interpreter that executes a
 * "script" of port, MMIO and memory operations placed in guest memory, and
 * prints what it reads to the COM1 UART as hexadecimal lines. Keeping the
 * logic in data keeps the hand-assembled code small (a few hundred bytes)
 * and the work per operation a few dozen instructions, which matters where
 * guest ring-0 code is emulated.
 *
 * Each operation is 24 bytes: u32 op, u32 width, u64 address (port or
 * guest-physical address), u64 value.
 *
 * - OUT width port value: `out`.
 * - IN width port: `in`, then print the value (width*2 hex digits).
 * - WRITE width address value: a store of 1, 2, 4 or 8 bytes.
 * - READ width address: a load, then print the value.
 * - WAIT_IRQ: `sti; hlt` until an interrupt arrives, then print its vector.
 *   The handler records the vector and returns with interrupts disabled; it
 *   does not EOI, so the script acknowledges the device and then writes the
 *   local APIC's EOI register itself (a level-triggered line that is still
 *   high would otherwise interrupt again at once).
 * - WAIT_UNTIL width address value: like WAIT_IRQ, but only an interrupt
 *   after which the u16/u32 at `address` reads `value` ends the wait (a
 *   driver checking its used ring); after any other interrupt the guest sends
 *   the EOI itself and sleeps again, as Linux does for an interrupt with
 *   nothing to do. It prints nothing, so that the driver can acknowledge the
 *   device first. A driver must tolerate such interrupts: on kvm_pvm a
 *   level-triggered IOAPIC interrupt is EOI'd when it is delivered (the local
 *   APIC's ISR bit is clear and the vector is back in IRR while the handler
 *   still runs, before the guest's EOI), so the IOAPIC delivers it once more
 *   while the device still holds the line, and the guest takes that second
 *   interrupt with InterruptStatus already 0.
 * - PRINT_VECTOR: print the vector of the last interrupt.
 * - END: `cli; hlt` forever (scripts normally power off first).
 */
export const OP = { END: 0, OUT: 1, IN: 2, WRITE: 3, READ: 4, WAIT_IRQ: 5, WAIT_UNTIL: 6, PRINT_VECTOR: 7 } as const;

/** Addresses the guest uses. The machine needs at least {@link SCRIPT_GUEST_MIN_MEMORY} bytes of RAM. */
export const GUEST = {
  /** Code: the interpreter and the interrupt stubs. */
  code: 0x10_0000,
  /** Interrupt count (u64) and last vector (u64). */
  data: 0x20_0000,
  /** The IDT (256 gates) and the pseudo-descriptor lidt loads. */
  idt: 0x21_0000,
  idtr: 0x22_0000,
  /** The script. */
  script: 0x30_0000,
  /** Top of the stack. */
  stack: 0x40_0000,
  /** First byte free for the test's own structures (virtqueues, buffers). */
  free: 0x50_0000,
} as const;

/** Smallest RAM the script guest fits in. */
export const SCRIPT_GUEST_MIN_MEMORY = 0x100_0000;

/** Interrupt vectors that have handlers (the others are not expected and would fault). */
export const FIRST_VECTOR = 0x20;
/** Number of vectors from {@link FIRST_VECTOR} with handlers. */
export const VECTOR_COUNT = 64;

const OP_SIZE = 24;
const LAPIC_EOI = 0xfee0_00b0;
const COM1 = 0x3f8;

/** Assembles the interpreter and builds its IDT. */
export function buildScriptGuest(): { code: Uint8Array; idt: Uint8Array; idtr: Uint8Array } {
  const a = new Assembler(GUEST.code);
  a.lidt(GUEST.idtr);
  a.movImm64(R.r15, GUEST.data);
  a.movImm64(R.rsi, GUEST.script);
  a.movImm64(R.rsp, GUEST.stack);

  a.label('next');
  a.load(4, R.rax, R.rsi, 0);
  a.load(4, R.rcx, R.rsi, 4);
  a.load(8, R.rdx, R.rsi, 8);
  a.load(8, R.rbx, R.rsi, 16);
  a.addImm(R.rsi, OP_SIZE);
  for (const [op, label] of [
    [OP.OUT, 'out'],
    [OP.IN, 'in'],
    [OP.WRITE, 'write'],
    [OP.READ, 'read'],
    [OP.WAIT_IRQ, 'wait'],
    [OP.WAIT_UNTIL, 'until'],
    [OP.PRINT_VECTOR, 'vector'],
  ] as const) {
    a.cmpImm32(R.rax, op).jcc(CC.e, label);
  }
  a.label('end').cli().hlt().jmp('end');

  // OUT / IN: the width selects the operand size.
  a.label('out').movReg(R.rax, R.rbx);
  for (const w of [1, 2] as const) a.cmpImm32(R.rcx, w).jcc(CC.e, `out${w}`);
  a.outDx(4).jmp('next');
  a.label('out1').outDx(1).jmp('next');
  a.label('out2').outDx(2).jmp('next');

  a.label('in').movImm32(R.rax, 0);
  for (const w of [1, 2] as const) a.cmpImm32(R.rcx, w).jcc(CC.e, `in${w}`);
  a.inDx(4).jmp('in.done');
  a.label('in1').inDx(1).jmp('in.done');
  a.label('in2').inDx(2);
  a.label('in.done').movReg(R.rbx, R.rax).call('print').jmp('next');

  // WRITE / READ through [rdx].
  a.label('write');
  for (const w of [1, 2, 4] as const) a.cmpImm32(R.rcx, w).jcc(CC.e, `write${w}`);
  a.store(8, R.rdx, 0, R.rbx).jmp('next');
  for (const w of [1, 2, 4] as const) a.label(`write${w}`).store(w, R.rdx, 0, R.rbx).jmp('next');

  a.label('read');
  for (const w of [1, 2, 4] as const) a.cmpImm32(R.rcx, w).jcc(CC.e, `read${w}`);
  a.load(8, R.rbx, R.rdx, 0).jmp('read.done');
  for (const w of [1, 2, 4] as const) a.label(`read${w}`).load(w, R.rbx, R.rdx, 0).jmp('read.done');
  a.label('read.done').call('print').jmp('next');

  // WAIT_IRQ: sleep until the handler has counted one more interrupt.
  a.label('wait').load(8, R.rax, R.r15, 0);
  a.label('wait.loop').sti().hlt().cmpMem64(R.rax, R.r15, 0).jcc(CC.e, 'wait.loop');
  a.load(8, R.rbx, R.r15, 8).movImm32(R.rcx, 1).call('print').jmp('next');

  // WAIT_UNTIL: rcx = width, rdx = address, rbx = value.
  a.label('until').load(8, R.rax, R.r15, 0);
  a.label('until.loop').sti().hlt().cmpMem64(R.rax, R.r15, 0).jcc(CC.e, 'until.loop');
  a.load(8, R.rax, R.r15, 0);
  a.cmpImm32(R.rcx, 2).jcc(CC.e, 'until.u16');
  a.load(4, R.rdi, R.rdx, 0).jmp('until.check');
  a.label('until.u16').load(2, R.rdi, R.rdx, 0);
  a.label('until.check').cmpReg32(R.rdi, R.rbx).jcc(CC.e, 'until.done');
  a.movImm64(R.rdi, LAPIC_EOI).store(4, R.rdi, 0, R.rdi).jmp('until.loop');
  a.label('until.done').jmp('next');
  a.label('vector').load(8, R.rbx, R.r15, 8).movImm32(R.rcx, 1).call('print').jmp('next');

  // print: rbx = value, ecx = width in bytes; prints width*2 hex digits and a newline.
  a.label('print').movReg(R.rdi, R.rcx).shlImm32(R.rdi, 1).movImm32(R.rdx, COM1);
  a.label('print.loop').dec32(R.rdi).movReg(R.rcx, R.rdi).shlImm32(R.rcx, 2).movReg(R.rax, R.rbx).shrCl64(R.rax).andImm32(R.rax, 0xf);
  a.cmpAl(10).jcc(CC.b, 'print.digit').addAl(0x61 - 10 - 0x30);
  a.label('print.digit').addAl(0x30).outDx(1).test32(R.rdi, R.rdi).jcc(CC.ne, 'print.loop');
  a.movAl(0x0a).outDx(1).ret();

  // Interrupt stubs: push rax, load the vector, join the common handler.
  for (let v = FIRST_VECTOR; v < FIRST_VECTOR + VECTOR_COUNT; v++) {
    a.label(`vector${v}`).push(R.rax).movImm32(R.rax, v).jmp('irq');
  }
  // Common handler: record the vector, count, clear IF in the interrupted RFLAGS (at rsp+24 after the push).
  a.label('irq').store(8, R.r15, 8, R.rax).incMem64(R.r15, 0).andMem64Imm(R.rsp, 24, ~0x200).pop(R.rax).iretq();

  const code = a.assemble();
  const idt = new Uint8Array(256 * 16);
  const view = new DataView(idt.buffer);
  for (let v = FIRST_VECTOR; v < FIRST_VECTOR + VECTOR_COUNT; v++) {
    const handler = a.address(`vector${v}`);
    const at = v * 16;
    view.setUint16(at, handler & 0xffff, true);
    view.setUint16(at + 2, 0x10, true);
    view.setUint8(at + 5, 0x8e);
    view.setUint16(at + 6, (handler >>> 16) & 0xffff, true);
    view.setUint32(at + 8, 0, true);
  }
  const idtr = new Uint8Array(10);
  new DataView(idtr.buffer).setUint16(0, idt.length - 1, true);
  new DataView(idtr.buffer).setBigUint64(2, BigInt(GUEST.idt), true);
  return { code, idt, idtr };
}

/** Builds a script: a list of operations encoded for the interpreter. */
export class Script {
  private readonly ops: { op: number; width: number; address: bigint; value: bigint }[] = [];

  private op(op: number, width: number, address: number, value: number | bigint): this {
    this.ops.push({ op, width, address: BigInt(address), value: BigInt.asUintN(64, BigInt(value)) });
    return this;
  }

  /** `out` of `width` bytes. */
  out(width: 1 | 2 | 4, port: number, value: number): this {
    return this.op(OP.OUT, width, port, value);
  }
  /** `in` of `width` bytes; the guest prints the value. */
  in(width: 1 | 2 | 4, port: number): this {
    return this.op(OP.IN, width, port, 0);
  }
  /** A store to guest-physical `address`. */
  write(width: 1 | 2 | 4 | 8, address: number, value: number | bigint): this {
    return this.op(OP.WRITE, width, address, value);
  }
  /** A load from `address`; the guest prints the value. */
  read(width: 1 | 2 | 4 | 8, address: number): this {
    return this.op(OP.READ, width, address, 0);
  }
  /** Waits for an interrupt; the guest prints its vector. */
  waitIrq(): this {
    return this.op(OP.WAIT_IRQ, 0, 0, 0);
  }
  /** Waits for an interrupt after which the u16 or u32 at `address` equals `value`. */
  waitUntil(width: 2 | 4, address: number, value: number): this {
    return this.op(OP.WAIT_UNTIL, width, address, value);
  }
  /** Prints the vector of the last interrupt. */
  printVector(): this {
    return this.op(OP.PRINT_VECTOR, 0, 0, 0);
  }
  /** Prints a line of text (each character an `out` to COM1). */
  print(text: string): this {
    for (const ch of `${text}\n`) this.out(1, COM1, ch.charCodeAt(0));
    return this;
  }
  /** Powers the machine off through the ACPI sleep control register (SLP_TYP 5, SLP_EN). */
  powerOff(sleepControlPort: number): this {
    return this.out(1, sleepControlPort, (5 << 2) | 0x20);
  }

  /** The encoded script, closed by END. */
  encode(): Uint8Array {
    const bytes = new Uint8Array((this.ops.length + 1) * OP_SIZE);
    const view = new DataView(bytes.buffer);
    this.ops.forEach(({ op, width, address, value }, i) => {
      const at = i * OP_SIZE;
      view.setUint32(at, op, true);
      view.setUint32(at + 4, width, true);
      view.setBigUint64(at + 8, address, true);
      view.setBigUint64(at + 16, value, true);
    });
    return bytes;
  }
}
