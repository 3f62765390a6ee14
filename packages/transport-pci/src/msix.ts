import { Msix } from './constants.js';
import type { PciViolations } from './function-state.js';

/** Where MSI messages go: the VMM's interrupt controller (e.g. KVM_SIGNAL_MSI or an irqfd route). */
export interface MsiSink {
  /**
   * The function wrote MSI message `data` to guest-physical `address`. The
   * address is exact: messages to addresses at or above 2^53 are not sent.
   */
  signal(address: number, data: number): void;
}

const TWO_32 = 0x1_0000_0000;
/** Highest Message Upper Address that keeps the address below 2^53. */
const MAX_UPPER_ADDRESS = 0x1f_ffff;

/**
 * The MSI-X table and pending bit array of one function ([PCI] 6.8.2): the
 * enable and function mask bits of Message Control, per-vector masks, and
 * pending bits that hold a message while its vector (or the whole function,
 * or the function's memory writes) is masked and release it when unmasked.
 */
export class MsixTable {
  /** Number of vectors (Table Size + 1). */
  readonly vectors: number;
  /** Byte size of the table. */
  readonly tableBytes: number;
  /** Byte size of the pending bit array (whole QWORDs). */
  readonly pbaBytes: number;
  /** MSI-X Enable in Message Control. */
  enabled = false;
  /** Function Mask in Message Control. */
  functionMasked = false;
  /** The function may write memory: Bus Master Enable is set and it is powered (D0). MSI messages are memory writes. */
  writesAllowed = false;
  private readonly table: Uint32Array;
  private readonly pba: Uint32Array;
  private readonly sink: MsiSink;
  private readonly violations: PciViolations;

  /** A table of `vectors` entries (1-2048), all masked, sending to `sink`; unsendable messages count in `violations.dma`. */
  constructor(vectors: number, sink: MsiSink, violations: PciViolations) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > Msix.MAX_VECTORS) {
      throw new RangeError(`MSI-X vector count ${vectors} is not in 1..${Msix.MAX_VECTORS}`);
    }
    this.vectors = vectors;
    this.tableBytes = vectors * Msix.ENTRY_SIZE;
    this.pbaBytes = Math.ceil(vectors / 64) * 8;
    this.table = new Uint32Array(vectors * 4);
    this.pba = new Uint32Array(this.pbaBytes / 4);
    this.sink = sink;
    this.violations = violations;
    this.reset();
  }

  /** Power-on state: disabled, every vector masked with a zero message, nothing pending. */
  reset(): void {
    this.enabled = false;
    this.functionMasked = false;
    this.writesAllowed = false;
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.table[4 * v + 3] = Msix.ENTRY_CTRL_MASKBIT;
    this.pba.fill(0);
  }

  /** Message Control's Enable and Function Mask changed; unmasking releases pending messages. */
  setControl(enabled: boolean, functionMasked: boolean): void {
    this.enabled = enabled;
    this.functionMasked = functionMasked;
    this.releasePending();
  }

  /** Whether the function may write memory changed; allowing it releases pending messages. */
  setWritesAllowed(allowed: boolean): void {
    this.writesAllowed = allowed;
    this.releasePending();
  }

  /** An interrupt on `vector`: sent now, or held in the pending bit array while masked. */
  notify(vector: number): void {
    if (!this.enabled || vector >= this.vectors) return;
    if (this.masked(vector)) this.pba[vector >>> 5] = ((this.pba[vector >>> 5] as number) | (1 << (vector & 31))) >>> 0;
    else this.send(vector);
  }

  /** Whether `vector`'s pending bit is set. */
  pending(vector: number): boolean {
    return vector < this.vectors && ((this.pba[vector >>> 5] as number) & (1 << (vector & 31))) !== 0;
  }

  /** The table and pending bits, as dwords. */
  save(): { readonly table: readonly number[]; readonly pba: readonly number[] } {
    return { table: [...this.table], pba: [...this.pba] };
  }

  /** Loads a {@link save}d table; Message Control and bus mastering are set separately. */
  load(saved: { readonly table: readonly number[]; readonly pba: readonly number[] }): void {
    if (saved.table.length !== this.table.length || saved.pba.length !== this.pba.length) {
      throw new RangeError(`MSI-X snapshot of ${saved.table.length / 4} vectors restored into a table of ${this.vectors}`);
    }
    this.table.set(saved.table);
    this.pba.set(saved.pba);
  }

  /** A dword read of the table at a checked, 4-aligned `offset`. */
  readTable(offset: number): number {
    return this.table[offset >>> 2] as number;
  }

  /** A dword write to the table at a checked, 4-aligned `offset`. */
  writeTable(offset: number, value: number): void {
    const index = offset >>> 2;
    const field = index & 3;
    if (field === 3) {
      // Vector Control: only the mask bit is defined; clearing it releases a pending message.
      this.table[index] = value & Msix.ENTRY_CTRL_MASKBIT;
      const vector = index >>> 2;
      if (this.enabled && !this.masked(vector) && this.pending(vector)) this.sendPending(vector);
      return;
    }
    // Message Address is dword aligned: its two low bits are read-only zero.
    this.table[index] = (field === 0 ? value & ~3 : value) >>> 0;
  }

  /** A dword read of the pending bit array at a checked, 4-aligned `offset`. */
  readPba(offset: number): number {
    return this.pba[offset >>> 2] as number;
  }

  private masked(vector: number): boolean {
    return this.functionMasked || !this.writesAllowed || ((this.table[4 * vector + 3] as number) & Msix.ENTRY_CTRL_MASKBIT) !== 0;
  }

  private releasePending(): void {
    if (!this.enabled || this.functionMasked || !this.writesAllowed) return;
    for (let word = 0; word < this.pba.length; word++) {
      if (this.pba[word] === 0) continue;
      for (let bit = 0; bit < 32; bit++) {
        const vector = 32 * word + bit;
        if (this.pending(vector) && !this.masked(vector)) this.sendPending(vector);
      }
    }
  }

  private sendPending(vector: number): void {
    this.pba[vector >>> 5] = ((this.pba[vector >>> 5] as number) & ~(1 << (vector & 31))) >>> 0;
    this.send(vector);
  }

  private send(vector: number): void {
    const upper = this.table[4 * vector + 1] as number;
    if (upper > MAX_UPPER_ADDRESS) {
      this.violations.dma++;
      return;
    }
    this.sink.signal(upper * TWO_32 + (this.table[4 * vector] as number), this.table[4 * vector + 2] as number);
  }
}
