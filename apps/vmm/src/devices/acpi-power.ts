import type { BusDevice } from '../bus/bus.js';
import { ACPI_RESET_VALUE, ACPI_S5_SLEEP_TYPE } from '../platform/layout.js';

const SLP_EN = 0x20;
const SLP_TYP_SHIFT = 2;
const SLP_TYP_MASK = 0x7;

/** What the guest asked the platform to do. */
export type PowerEvent = 'poweroff' | 'reboot';

/**
 * The hardware-reduced ACPI power registers (ACPI 6.5, 4.8.3.7): a sleep
 * control register (SLP_TYP and SLP_EN), a sleep status register, and the
 * FADT reset register. Offsets: 0 control, 1 status, 2 reset. Writing S5's
 * SLP_TYP with SLP_EN is poweroff; writing the reset value is reboot.
 */
export class AcpiPower implements BusDevice {
  private readonly event: (event: PowerEvent) => void;

  /** Creates the registers; `event` runs when the guest powers off or resets. */
  constructor(event: (event: PowerEvent) => void) {
    this.event = event;
  }

  /**
   * All three registers read as zero: there is no wake status to report.
   * @inheritDoc
   */
  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  /**
   * S5's SLP_TYP with SLP_EN at offset 0 powers off; the reset value at offset 2 reboots; anything
   * else is ignored.
   * @inheritDoc
   */
  write(offset: number, data: Uint8Array): void {
    const value = data[0] as number;
    if (offset === 0 && (value & SLP_EN) !== 0 && ((value >> SLP_TYP_SHIFT) & SLP_TYP_MASK) === ACPI_S5_SLEEP_TYPE) {
      this.event('poweroff');
    } else if (offset === 2 && value === ACPI_RESET_VALUE) {
      this.event('reboot');
    }
  }
}
