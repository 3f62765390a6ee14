import type { BusDevice } from '../bus/bus.js';

const IER_RDA = 0x01;
const IER_THRE = 0x02;
const IER_RLS = 0x04;
const IIR_NONE = 0x01;
const IIR_RLS = 0x06;
const IIR_RDA = 0x04;
const IIR_THRE = 0x02;
const IIR_FIFO = 0xc0;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const LCR_DLAB = 0x80;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MCR_LOOP = 0x10;
/** DCD, DSR and CTS: a terminal is attached and ready. */
const MSR_CONNECTED = 0xb0;
/** Host-side receive buffer; bytes beyond it are dropped and reported as an overrun. */
const RX_CAPACITY = 4096;

/** Options for {@link Uart16550}. */
export interface Uart16550Options {
  /** Called with every byte the guest transmits. */
  readonly transmit: (byte: number) => void;
  /** Drives the UART's interrupt line. */
  readonly irq: (level: boolean) => void;
}

/**
 * A 16550A UART (the PC's COM port) as Linux's 8250 driver sees it: the
 * divisor latch, FIFO control, loopback mode (which the driver's probe
 * tests), and the receive-data, transmitter-empty and line-status
 * interrupts. Transmission is instantaneous: every byte written to THR goes
 * straight to `transmit`.
 */
export class Uart16550 implements BusDevice {
  private readonly options: Uart16550Options;
  private readonly rx = new Uint8Array(RX_CAPACITY);
  private rxHead = 0;
  private rxCount = 0;
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private lsrErrors = 0;
  private scratch = 0;
  private divisor = 1;
  private fifoEnabled = false;
  /** The transmitter-empty interrupt is pending (cleared by reading IIR or writing THR). */
  private thrEmptyPending = false;
  private irqLevel = false;

  /** Creates the UART with `options`' transmit sink and interrupt line. */
  constructor(options: Uart16550Options) {
    this.options = options;
  }

  /** Queues bytes typed by the user for the guest to read. Returns how many fitted. */
  receive(bytes: Uint8Array): number {
    let accepted = 0;
    for (const byte of bytes) {
      if (this.rxCount === RX_CAPACITY) {
        this.lsrErrors |= LSR_OE;
        break;
      }
      this.rx[(this.rxHead + this.rxCount) % RX_CAPACITY] = byte;
      this.rxCount++;
      accepted++;
    }
    this.update();
    return accepted;
  }

  /**
   * Registers are one byte wide; a wider access reads zeroes.
   * @inheritDoc
   */
  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (data.length !== 1) return;
    data[0] = this.readRegister(offset);
  }

  /**
   * Registers are one byte wide; a wider access is ignored.
   * @inheritDoc
   */
  write(offset: number, data: Uint8Array): void {
    if (data.length !== 1) return;
    this.writeRegister(offset, data[0] as number);
  }

  private readRegister(offset: number): number {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        if (dlab) return this.divisor & 0xff;
        return this.popRx();
      case 1:
        return dlab ? (this.divisor >> 8) & 0xff : this.ier;
      case 2: {
        const iir = this.interruptIdentification();
        if (iir === IIR_THRE) {
          this.thrEmptyPending = false;
          this.update();
        }
        return iir | (this.fifoEnabled ? IIR_FIFO : 0);
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const lsr = LSR_THRE | LSR_TEMT | (this.rxCount > 0 ? LSR_DR : 0) | this.lsrErrors;
        this.lsrErrors = 0;
        this.update();
        return lsr;
      }
      case 6:
        return this.modemStatus();
      case 7:
        return this.scratch;
      default:
        return 0xff;
    }
  }

  private writeRegister(offset: number, value: number): void {
    const dlab = (this.lcr & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        if (dlab) {
          this.divisor = (this.divisor & 0xff00) | value;
        } else {
          if ((this.mcr & MCR_LOOP) !== 0) this.receive(Uint8Array.of(value));
          else this.options.transmit(value);
          this.thrEmptyPending = true;
          this.update();
        }
        return;
      case 1:
        if (dlab) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
        } else {
          // Enabling the THRE interrupt while the transmitter is empty raises it at once.
          if ((value & IER_THRE) !== 0 && (this.ier & IER_THRE) === 0) this.thrEmptyPending = true;
          this.ier = value & 0x0f;
          this.update();
        }
        return;
      case 2:
        this.fifoEnabled = (value & FCR_ENABLE) !== 0;
        if ((value & FCR_CLEAR_RX) !== 0) {
          this.rxHead = 0;
          this.rxCount = 0;
          this.update();
        }
        return;
      case 3:
        this.lcr = value;
        return;
      case 4:
        this.mcr = value & 0x1f;
        return;
      case 7:
        this.scratch = value;
        return;
      default:
        return;
    }
  }

  private popRx(): number {
    if (this.rxCount === 0) return 0;
    const byte = this.rx[this.rxHead] as number;
    this.rxHead = (this.rxHead + 1) % RX_CAPACITY;
    this.rxCount--;
    this.update();
    return byte;
  }

  private modemStatus(): number {
    if ((this.mcr & MCR_LOOP) === 0) return MSR_CONNECTED;
    // Loopback wires DTR to DSR, RTS to CTS, OUT1 to RI and OUT2 to DCD.
    const m = this.mcr;
    return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
  }

  private interruptIdentification(): number {
    if ((this.ier & IER_RLS) !== 0 && this.lsrErrors !== 0) return IIR_RLS;
    if ((this.ier & IER_RDA) !== 0 && this.rxCount > 0) return IIR_RDA;
    if ((this.ier & IER_THRE) !== 0 && this.thrEmptyPending) return IIR_THRE;
    return IIR_NONE;
  }

  private update(): void {
    const level = this.interruptIdentification() !== IIR_NONE;
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.options.irq(level);
  }
}
