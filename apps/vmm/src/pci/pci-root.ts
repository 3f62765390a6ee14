import { accessValue, type BusDevice } from '../bus/bus.js';

/** A PCI function's configuration space, as the root complex reaches it. */
export interface PciFunction {
  /** Fills `data` with configuration bytes at `offset` (an aligned access of 1, 2 or 4 bytes). */
  configRead(offset: number, data: Uint8Array): void;
  /** Applies a configuration write of `data` at `offset`. */
  configWrite(offset: number, data: Uint8Array): void;
}

/** Configuration space size of a PCI Express function (ECAM reaches all of it; 0xCF8/0xCFC the first 256 bytes). */
export const PCI_CONFIG_SPACE_SIZE = 4096;
const DEVICES_PER_BUS = 32;
const ENABLE_BIT = 0x8000_0000;

/**
 * Bus 0 of the PCI root complex: up to 32 single-function devices, reached
 * through configuration mechanism #1 (the 0xCF8 address and 0xCFC data
 * ports) and through ECAM (PCI Express Base 6.0, 7.2.2). Absent functions
 * read as all ones (vendor ID 0xFFFF) and ignore writes; misaligned accesses
 * are refused the same way.
 */
export class PciRoot {
  private readonly functions: (PciFunction | undefined)[] = new Array<PciFunction | undefined>(DEVICES_PER_BUS).fill(undefined);
  private address = 0;

  /** Places `fn` at device number `device` (function 0) on bus 0. */
  attach(device: number, fn: PciFunction): void {
    if (!Number.isInteger(device) || device < 0 || device >= DEVICES_PER_BUS) throw new RangeError(`PCI device number ${device} is not in 0..31`);
    if (this.functions[device] !== undefined) throw new Error(`PCI slot 00:${device.toString(16).padStart(2, '0')}.0 is taken`);
    this.functions[device] = fn;
  }

  /** The lowest free device number, or -1. */
  freeSlot(): number {
    return this.functions.indexOf(undefined);
  }

  /** The 8-byte port window at 0xCF8: the address register (4 bytes) and the data window (4 bytes). */
  readonly ioPorts: BusDevice = {
    read: (offset, data) => {
      if (offset === 0 && data.length === 4) {
        new DataView(data.buffer, data.byteOffset, 4).setUint32(0, this.address >>> 0, true);
      } else if (offset >= 4) {
        this.portAccess(offset - 4, data, false);
      } else {
        data.fill(0xff);
      }
    },
    write: (offset, data) => {
      if (offset === 0 && data.length === 4) this.address = accessValue(data) & 0x80ff_fffc;
      else if (offset >= 4) this.portAccess(offset - 4, data, true);
    },
  };

  /** The ECAM window of bus 0: bits 19-15 device, 14-12 function, 11-0 register. */
  readonly ecam: BusDevice = {
    read: (offset, data) => this.access(offset >> 15, (offset >> 12) & 7, offset & 0xfff, data, false),
    write: (offset, data) => this.access(offset >> 15, (offset >> 12) & 7, offset & 0xfff, data, true),
  };

  private portAccess(byte: number, data: Uint8Array, write: boolean): void {
    const a = this.address;
    if ((a & ENABLE_BIT) === 0 || ((a >> 16) & 0xff) !== 0) {
      if (!write) data.fill(0xff);
      return;
    }
    this.access((a >> 11) & 0x1f, (a >> 8) & 7, (a & 0xfc) + byte, data, write);
  }

  private access(device: number, fn: number, register: number, data: Uint8Array, write: boolean): void {
    const target = fn === 0 ? this.functions[device] : undefined;
    const aligned = (data.length === 1 || data.length === 2 || data.length === 4) && register % data.length === 0;
    if (target === undefined || !aligned || register + data.length > PCI_CONFIG_SPACE_SIZE) {
      if (!write) data.fill(0xff);
      return;
    }
    if (write) target.configWrite(register, data);
    else target.configRead(register, data);
  }
}
