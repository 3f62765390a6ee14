import { afterEach, describe, expect, it } from 'vitest';
import type { BusDevice } from './bus/bus.js';
import type { Machine } from './machine.js';
import { ACPI_SLEEP_CONTROL_PORT, COM1_PORT, ECAM_START, IOAPIC_START, LAPIC_START } from './platform/layout.js';
import { Script } from './testing/script-guest.js';
import { kvmUnavailableReason } from './testing/kvm-available.js';
import { startScriptGuest } from './testing/run-script-guest.js';

const noKvm = kvmUnavailableReason();
if (noKvm !== undefined) console.warn(`SKIP: machine tests need KVM: ${noKvm}`);

const LAPIC_SVR = LAPIC_START + 0xf0;
const LAPIC_EOI = LAPIC_START + 0xb0;

/**
 * Script steps that mask the 8259 PICs (ISA IRQs reach them as well as the
 * IOAPIC), enable the local APIC and route IOAPIC `pin` to `vector` on APIC 0.
 */
function routePin(s: Script, pin: number, vector: number, level: boolean): Script {
  return s
    .out(1, 0x21, 0xff)
    .out(1, 0xa1, 0xff)
    .write(4, LAPIC_SVR, 0x1ff)
    .write(4, IOAPIC_START, 0x10 + 2 * pin)
    .write(4, IOAPIC_START + 0x10, vector | (level ? 1 << 15 : 0))
    .write(4, IOAPIC_START, 0x11 + 2 * pin)
    .write(4, IOAPIC_START + 0x10, 0);
}

const running: Machine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((m) => m.stop()));
});

describe.skipIf(noKvm !== undefined)('Machine with a purpose-built guest', () => {
  it('runs port I/O to the UART and PCI configuration reads through 0xCF8/0xCFC and ECAM, then powers off', async () => {
    const script = new Script()
      .print('hello from the guest')
      .in(1, COM1_PORT + 5) // LSR: transmitter empty
      .out(4, 0xcf8, 0x8000_0000) // 00:00.0 register 0
      .in(4, 0xcfc) // host bridge vendor/device
      .out(4, 0xcf8, 0x8000_0808) // 00:01.0 register 8: no device there
      .in(4, 0xcfc)
      .read(4, ECAM_START) // 00:00.0 through ECAM
      .read(2, ECAM_START + 0x0a) // class: host bridge
      .read(4, ECAM_START + (1 << 15)) // 00:01.0 absent
      .powerOff(ACPI_SLEEP_CONTROL_PORT);
    const { machine, console } = startScriptGuest(script);
    running.push(machine);
    expect(await machine.outcome).toEqual({ kind: 'poweroff' });
    expect(console.lines).toEqual(['hello from the guest', '60', '00081b36', 'ffffffff', '00081b36', '0600', 'ffffffff']);
  });

  it('wakes the halted vCPU with an interrupt raised on the main thread (the UART receiving a key)', async () => {
    const script = routePin(new Script(), 4, 0x24, false)
      .out(1, COM1_PORT + 1, 0x01) // IER: received-data interrupt
      .print('ready')
      .waitIrq()
      .in(1, COM1_PORT)
      .write(4, LAPIC_EOI, 0)
      .powerOff(ACPI_SLEEP_CONTROL_PORT);
    const { machine, console } = startScriptGuest(script);
    running.push(machine);
    await console.waitFor('ready\n', 10_000, machine.outcome);
    machine.consoleInput(Uint8Array.of(0x41));
    expect(await machine.outcome).toEqual({ kind: 'poweroff' });
    expect(console.lines).toEqual(['ready', '24', '41']);
  });

  it('delivers an MSI to the halted vCPU', async () => {
    const script = new Script().write(4, LAPIC_SVR, 0x1ff).print('ready').waitIrq().write(4, LAPIC_EOI, 0).powerOff(ACPI_SLEEP_CONTROL_PORT);
    const { machine, console } = startScriptGuest(script);
    running.push(machine);
    await console.waitFor('ready\n', 10_000, machine.outcome);
    expect(machine.msi.signal({ address: 0xfee0_0000n, data: 0x41 })).toBe(true);
    expect(await machine.outcome).toEqual({ kind: 'poweroff' });
    expect(console.lines).toEqual(['ready', '41']);
  });

  it('turns guest writes matching an ioeventfd into eventfd signals instead of exits', async () => {
    // No device sits at this address: a write that exited to the VMM would be counted as unclaimed.
    const DOORBELL = 0xd200_0000;
    let kicked: () => void = () => undefined;
    const kick = new Promise<void>((resolve) => (kicked = resolve));
    const { machine, console } = startScriptGuest((m) => {
      m.ioeventfd({ address: DOORBELL, length: 4, datamatch: 7 }, kicked);
      return new Script()
        .write(4, LAPIC_SVR, 0x1ff)
        .write(4, DOORBELL, 8)
        .write(4, DOORBELL, 7)
        .print('kicked')
        .waitIrq()
        .powerOff(ACPI_SLEEP_CONTROL_PORT);
    });
    running.push(machine);
    await console.waitFor('kicked\n', 10_000, machine.outcome);
    await kick;
    // Only the write of 8, which the datamatch refuses, reached the bus.
    expect(machine.mmio.unclaimed).toBe(1);
    machine.msi.signal({ address: 0xfee0_0000n, data: 0x42 });
    expect(await machine.outcome).toEqual({ kind: 'poweroff' });
    expect(console.lines).toEqual(['kicked', '42']);
  });

  for (const injection of ['irqfd', 'irq-line'] as const) {
    it(`holds a level-triggered GSI until the device lowers it (${injection})`, async () => {
      // A device register: reading returns the line's level, writing lowers the line.
      const DEVICE = 0xd100_0000;
      let raise: () => void = () => undefined;
      const script = (machine: Machine): Script => {
        const line = machine.interruptLine(16);
        let level = false;
        raise = () => {
          level = true;
          line.set(true);
        };
        const device: BusDevice = {
          read: (_offset, data) => data.fill(level ? 1 : 0),
          write: () => {
            level = false;
            line.set(false);
          },
        };
        machine.addMmio(DEVICE, 0x1000, device, 'test line');
        const s = routePin(new Script(), 16, 0x30, true);
        for (const round of [1, 2]) {
          s.print(`ready ${round}`).waitIrq().read(1, DEVICE).write(1, DEVICE, 0).write(4, LAPIC_EOI, 0);
        }
        return s.read(1, DEVICE).powerOff(ACPI_SLEEP_CONTROL_PORT);
      };
      const { machine, console } = startScriptGuest(script, { gsiInjection: injection });
      running.push(machine);
      expect(machine.gsiInjection).toBe(injection);
      for (const round of [1, 2]) {
        await console.waitFor(`ready ${round}\n`, 10_000, machine.outcome);
        raise();
      }
      expect(await machine.outcome).toEqual({ kind: 'poweroff' });
      // One interrupt per raise: after the device lowered the line and the guest EOI'd, nothing re-fires.
      expect(console.lines).toEqual(['ready 1', '30', '01', 'ready 2', '30', '01', '00']);
    });
  }
});
