import {
  AmlDevice,
  AmlInteger,
  AmlName,
  AmlPackage,
  AmlScope,
  AmlString,
  addressSpace,
  eisaId,
  extendedInterrupt,
  ioPort,
  isaIrq,
  memory32Fixed,
  resourceTemplate,
  type AmlTerm,
} from './aml.js';

/** A virtio-mmio device as the DSDT announces it. */
export interface MmioDeviceEntry {
  /** Guest-physical base of the device's register window. */
  readonly base: number;
  /** Size of the register window in bytes. */
  readonly size: number;
  /** The global system interrupt the device raises, level-triggered. */
  readonly gsi: number;
}

/** What the DSDT describes. */
export interface DsdtConfig {
  /** The 16550 UART (PNP0501). */
  readonly serial: { readonly port: number; readonly irq: number };
  /** virtio-mmio devices, each an LNRO0005 with its registers and a level-triggered GSI. */
  readonly virtioMmio: readonly MmioDeviceEntry[];
  /** The PCI host bridge: ECAM, the 32-bit window it forwards, and the legacy configuration ports. */
  readonly pci: {
    readonly ecamBase: number;
    readonly ecamSize: number;
    readonly mmioBase: number;
    readonly mmioSize: number;
    readonly configPort: number;
  };
  /** The SLP_TYP value for S5 (soft off). */
  readonly s5SleepType: number;
}

/** The DSDT's AML: \_SB with the UART, the PCI host bridge, ECAM's reservation and the virtio-mmio devices; \_S5. */
export function buildDsdtAml(config: DsdtConfig): Uint8Array {
  const serial = new AmlDevice('COM1', [
    new AmlName('_HID', eisaId('PNP0501')),
    new AmlName('_UID', new AmlInteger(1)),
    new AmlName('_CRS', resourceTemplate([ioPort(config.serial.port, 8), isaIrq(config.serial.irq)])),
  ]);
  const pci = new AmlDevice('PCI0', [
    new AmlName('_HID', eisaId('PNP0A08')),
    new AmlName('_CID', eisaId('PNP0A03')),
    new AmlName('_SEG', new AmlInteger(0)),
    new AmlName('_BBN', new AmlInteger(0)),
    new AmlName('_UID', new AmlInteger(0)),
    new AmlName(
      '_CRS',
      resourceTemplate([
        addressSpace('word', 'bus', 0, 1),
        ioPort(config.pci.configPort, 8),
        addressSpace('dword', 'memory', config.pci.mmioBase, config.pci.mmioSize),
      ]),
    ),
  ]);
  // ECAM must be reserved by a motherboard resource device, or Linux will not use it (PCI Firmware 3.2, 4.1.2).
  const board = new AmlDevice('MBRD', [
    new AmlName('_HID', eisaId('PNP0C02')),
    new AmlName('_UID', new AmlInteger(0)),
    new AmlName('_CRS', resourceTemplate([memory32Fixed(config.pci.ecamBase, config.pci.ecamSize)])),
  ]);
  const mmio: AmlTerm[] = config.virtioMmio.map(
    (device, i) =>
      new AmlDevice(`VR${i.toString(16).toUpperCase().padStart(2, '0')}`, [
        new AmlName('_HID', new AmlString('LNRO0005')),
        new AmlName('_UID', new AmlInteger(i)),
        new AmlName('_CRS', resourceTemplate([memory32Fixed(device.base, device.size), extendedInterrupt(device.gsi, 'level')])),
      ]),
  );
  const root = new AmlScope('\\_SB', [serial, pci, board, ...mmio]);
  const s5 = new AmlName('\\_S5', new AmlPackage([new AmlInteger(config.s5SleepType), new AmlInteger(0)]));
  const a = root.encode();
  const b = s5.encode();
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
