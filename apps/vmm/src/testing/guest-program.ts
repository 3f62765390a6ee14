import { Script } from './script-guest.js';

/** The local APIC registers a test guest uses. */
export const LAPIC = { svr: 0xfee0_00f0, eoi: 0xfee0_00b0 } as const;
const IOAPIC = 0xfec0_0000;

function hex(value: number | bigint, width: number): string {
  return BigInt.asUintN(width * 8, BigInt(value)).toString(16).padStart(width * 2, '0');
}

/**
 * A {@link Script} together with the console lines it must print when the
 * platform and devices behave: every read is paired with its expected value,
 * so a test compares the guest's whole output at once.
 */
export class GuestProgram {
  /** The script the guest runs. */
  readonly script = new Script();
  /** The lines the guest prints when everything reads as expected. */
  readonly expected: string[] = [];

  /** A load the guest prints; `expect` is what it must read. */
  read(width: 1 | 2 | 4 | 8, address: number, expect: number | bigint): this {
    this.script.read(width, address);
    this.expected.push(hex(expect, width));
    return this;
  }

  /** A store. */
  write(width: 1 | 2 | 4 | 8, address: number, value: number | bigint): this {
    this.script.write(width, address, value);
    return this;
  }

  /** An `in` the guest prints. */
  in(width: 1 | 2 | 4, port: number, expect: number): this {
    this.script.in(width, port);
    this.expected.push(hex(expect, width));
    return this;
  }

  /** An `out`. */
  out(width: 1 | 2 | 4, port: number, value: number): this {
    this.script.out(width, port, value);
    return this;
  }

  /** A line of text. */
  print(text: string): this {
    this.script.print(text);
    this.expected.push(text);
    return this;
  }

  /** Waits for an interrupt that must arrive on `vector`, then sends the local APIC its EOI after `acknowledge`. */
  waitIrq(vector: number, acknowledge: (p: this) => void = () => undefined): this {
    this.script.waitIrq();
    this.expected.push(hex(vector, 1));
    acknowledge(this);
    return this.write(4, LAPIC.eoi, 0);
  }

  /**
   * Waits for an interrupt after which the u16/u32 at `address` equals `value`
   * (interrupts with nothing to do get an EOI and are waited past), runs
   * `acknowledge`, sends the EOI, and then prints the vector, expected to be `vector`.
   */
  waitFor(width: 2 | 4, address: number, value: number, vector: number, acknowledge: (p: this) => void = () => undefined): this {
    this.script.waitUntil(width, address, value);
    acknowledge(this);
    this.write(4, LAPIC.eoi, 0);
    this.script.printVector();
    this.expected.push(hex(vector, 1));
    return this;
  }

  /** Masks the 8259 PICs and software-enables the local APIC. */
  enableApic(): this {
    return this.out(1, 0x21, 0xff).out(1, 0xa1, 0xff).write(4, LAPIC.svr, 0x1ff);
  }

  /** Routes IOAPIC pin `pin` to `vector` on APIC 0, level- or edge-triggered. */
  routeIoapicPin(pin: number, vector: number, level: boolean): this {
    return this.write(4, IOAPIC, 0x10 + 2 * pin)
      .write(4, IOAPIC + 0x10, vector | (level ? 1 << 15 : 0))
      .write(4, IOAPIC, 0x11 + 2 * pin)
      .write(4, IOAPIC + 0x10, 0);
  }

  /** Powers off through the ACPI sleep control register. */
  powerOff(sleepControlPort: number): this {
    this.script.powerOff(sleepControlPort);
    return this;
  }
}
