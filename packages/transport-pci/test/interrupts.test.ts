import { LoopbackDevice, VirtioDriver } from '@virtio-ts/driver';
import { describe, expect, it } from 'vitest';
import { CommonCfg, Msix, PciBarIndex, PciCommand, PciConfig, VIRTIO_MSI_NO_VECTOR, type PciTransport } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { wire } from './harness.js';

/** Offset of the MSI-X capability, found the way a driver finds it. */
function msixCap(fn: PciTransport): number {
  for (let at = fn.configRead(PciConfig.CAPABILITY_LIST, 1); at !== 0; at = fn.configRead(at + 1, 1)) {
    if (fn.configRead(at, 1) === 0x11) return at;
  }
  throw new Error('no MSI-X capability');
}

const readCommon = (fn: PciTransport, offset: number, size: number): number => fn.barRead(PciBarIndex.VIRTIO, offset, size);
const writeCommon = (fn: PciTransport, offset: number, size: number, value: number): void => fn.barWrite(PciBarIndex.VIRTIO, offset, size, value);
const PBA = 0x1000;

/** A running loopback device with MSI-X set up by the driver: configuration changes on vector 0, queue 0 on vector 1. */
async function running() {
  const wired = wire(new LoopbackDevice());
  const virtio = new VirtioDriver(wired.driver);
  await virtio.init();
  wired.messages.length = 0;
  return { ...wired, virtio, cap: msixCap(wired.fn) };
}

/** One loopback request of one byte. */
const ping = (virtio: VirtioDriver): Promise<unknown> => virtio.queue(0).request([new Uint8Array([1])], [1]);

describe('MSI-X ([PCI] 6.8.2, spec 4.1.5.1.2)', () => {
  it('the capability reports the table size, and the table and PBA in BAR 1', async () => {
    const { fn, cap } = await running();
    expect(fn.configRead(cap + Msix.FLAGS, 2) & Msix.FLAGS_QSIZE).toBe(1);
    expect(fn.configRead(cap + Msix.TABLE, 4)).toBe(PciBarIndex.MSIX);
    expect(fn.configRead(cap + Msix.PBA, 4)).toBe(PBA | PciBarIndex.MSIX);
    // The driver programmed the table: address, data = vector, unmasked.
    expect(fn.barRead(PciBarIndex.MSIX, 16, 4)).toBe(0xfee0_0000);
    expect(fn.barRead(PciBarIndex.MSIX, 24, 4)).toBe(1);
    expect(fn.barRead(PciBarIndex.MSIX, 28, 4)).toBe(0);
  });

  it('function mask holds a message as a pending bit; clearing the mask delivers it', async () => {
    const { fn, messages, cap, virtio } = await running();
    fn.configWrite(cap + Msix.FLAGS, 2, Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL);
    fn.core.configChanged();
    expect(messages).toEqual([]);
    expect(fn.barRead(PciBarIndex.MSIX, PBA, 4)).toBe(0b1);
    expect(fn.msixPending(0)).toBe(true);
    fn.configWrite(cap + Msix.FLAGS, 2, Msix.FLAGS_ENABLE);
    expect(messages).toEqual([{ address: 0xfee0_0000, data: 0 }]);
    expect(fn.barRead(PciBarIndex.MSIX, PBA, 4)).toBe(0);
    expect(virtio.interrupts.config).toBe(1);
  });

  it('a vector mask holds its message in the PBA; unmasking sends it', async () => {
    const { fn, messages, virtio } = await running();
    fn.barWrite(PciBarIndex.MSIX, 16 + 12, 4, 1);
    let done = false;
    const answered = ping(virtio).then(() => (done = true));
    await Promise.resolve();
    expect(messages).toEqual([]);
    expect(fn.msixPending(1)).toBe(true);
    // The device used the buffer, but without the interrupt the driver has not looked.
    expect(done).toBe(false);
    // Only that vector is masked: configuration changes still arrive.
    fn.core.configChanged();
    expect(messages).toEqual([{ address: 0xfee0_0000, data: 0 }]);
    fn.barWrite(PciBarIndex.MSIX, 16 + 12, 4, 0);
    expect(messages.at(-1)).toEqual({ address: 0xfee0_0000, data: 1 });
    expect(fn.msixPending(1)).toBe(false);
    await answered;
  });

  it('a pending message is sent with its table entry as it is at unmasking ([PCI] 6.8.2.9)', async () => {
    const { fn, messages, virtio } = await running();
    fn.barWrite(PciBarIndex.MSIX, 12, 4, 1);
    fn.core.configChanged();
    expect(fn.msixPending(0)).toBe(true);
    // Retarget vector 0 to the queue vector's data before unmasking.
    fn.barWrite(PciBarIndex.MSIX, 8, 4, 1);
    fn.barWrite(PciBarIndex.MSIX, 12, 4, 0);
    expect(messages).toEqual([{ address: 0xfee0_0000, data: 1 }]);
    expect(virtio.interrupts.queue.get(0)).toBe(1);
    expect(virtio.interrupts.config).toBe(0);
  });

  it('spec 4.1.5.3.1, 4.1.5.4.1: NO_VECTOR means no interrupt at all, and nothing pending', async () => {
    const { fn, messages, intx, virtio } = await running();
    writeCommon(fn, CommonCfg.CONFIG_MSIX_VECTOR, 2, VIRTIO_MSI_NO_VECTOR);
    writeCommon(fn, CommonCfg.QUEUE_SELECT, 2, 0);
    writeCommon(fn, CommonCfg.QUEUE_MSIX_VECTOR, 2, VIRTIO_MSI_NO_VECTOR);
    fn.core.configChanged();
    const queue = virtio.queue(0);
    queue.add([
      { addr: virtio.allocate(1), len: 1, writable: false },
      { addr: virtio.allocate(1), len: 1, writable: true },
    ]);
    queue.kick();
    expect(queue.collect()).toHaveLength(1);
    expect(messages).toEqual([]);
    expect(intx).toEqual([]);
    expect(fn.barRead(PciBarIndex.MSIX, PBA, 4)).toBe(0);
  });

  it('spec 4.1.5.1.2.1: mapping to a vector outside the table fails and reads back NO_VECTOR', async () => {
    const { fn } = await running();
    writeCommon(fn, CommonCfg.CONFIG_MSIX_VECTOR, 2, 2);
    expect(readCommon(fn, CommonCfg.CONFIG_MSIX_VECTOR, 2)).toBe(VIRTIO_MSI_NO_VECTOR);
    writeCommon(fn, CommonCfg.QUEUE_SELECT, 2, 0);
    writeCommon(fn, CommonCfg.QUEUE_MSIX_VECTOR, 2, 0x7ff);
    expect(readCommon(fn, CommonCfg.QUEUE_MSIX_VECTOR, 2)).toBe(VIRTIO_MSI_NO_VECTOR);
    writeCommon(fn, CommonCfg.QUEUE_MSIX_VECTOR, 2, 0);
    expect(readCommon(fn, CommonCfg.QUEUE_MSIX_VECTOR, 2)).toBe(0);
  });

  it('spec 4.1.5.1.2.1: device reset unmaps every event', async () => {
    const { fn } = await running();
    writeCommon(fn, CommonCfg.DEVICE_STATUS, 1, 0);
    expect(readCommon(fn, CommonCfg.CONFIG_MSIX_VECTOR, 2)).toBe(VIRTIO_MSI_NO_VECTOR);
    writeCommon(fn, CommonCfg.QUEUE_SELECT, 2, 0);
    expect(readCommon(fn, CommonCfg.QUEUE_MSIX_VECTOR, 2)).toBe(VIRTIO_MSI_NO_VECTOR);
  });

  it('with bus mastering off no message is written; it stays pending until bus mastering is back', async () => {
    const { fn, messages } = await running();
    const command = fn.configRead(PciConfig.COMMAND, 2);
    fn.configWrite(PciConfig.COMMAND, 2, command & ~PciCommand.MASTER);
    fn.core.configChanged();
    expect(messages).toEqual([]);
    expect(fn.msixPending(0)).toBe(true);
    fn.configWrite(PciConfig.COMMAND, 2, command);
    expect(messages).toEqual([{ address: 0xfee0_0000, data: 0 }]);
  });

  it('table entries take aligned dwords only; the PBA is read-only; Message Address bits 1:0 are zero', async () => {
    const { fn } = await running();
    fn.barWrite(PciBarIndex.MSIX, 0, 4, 0xfee0_1003);
    expect(fn.barRead(PciBarIndex.MSIX, 0, 4)).toBe(0xfee0_1000);
    const before = fn.violations.access;
    fn.barWrite(PciBarIndex.MSIX, 8, 2, 0x55);
    expect(fn.barRead(PciBarIndex.MSIX, 2, 2)).toBe(0);
    expect(fn.violations.access).toBe(before + 2);
    fn.barWrite(PciBarIndex.MSIX, PBA, 4, 0xffffffff);
    expect(fn.barRead(PciBarIndex.MSIX, PBA, 4)).toBe(0);
    expect(fn.violations.write).toBe(1);
  });

  it('a message whose address does not fit 2^53 is not sent, and counted', async () => {
    const { fn, messages } = await running();
    fn.barWrite(PciBarIndex.MSIX, 4, 4, 0xffff_ffff);
    fn.core.configChanged();
    expect(messages).toEqual([]);
    expect(fn.violations.dma).toBe(1);
  });
});

describe('INTx and the ISR status (spec 4.1.4.5)', () => {
  it('MSI-X enabled: INTx stays deasserted; disabled: the ISR drives the line and Interrupt Status', async () => {
    const { fn, intx, messages, cap, virtio } = await running();
    fn.configWrite(cap + Msix.FLAGS, 2, 0);
    fn.configWrite(PciConfig.COMMAND, 2, fn.configRead(PciConfig.COMMAND, 2) & ~PciCommand.INTX_DISABLE);
    await ping(virtio);
    expect(messages).toEqual([]);
    expect(intx).toEqual([true, false]);
    // The driver's handler read the ISR (queue bit), which cleared it and lowered the line.
    expect(virtio.interrupts.unattributed).toBe(1);
    expect(fn.configRead(PciConfig.STATUS, 2) & 0x8).toBe(0);
  });

  it('Interrupt Disable keeps the line low; Interrupt Status still shows the pending ISR; clearing it raises the line', async () => {
    const { fn, intx, cap } = await running();
    fn.configWrite(cap + Msix.FLAGS, 2, 0);
    fn.configWrite(PciConfig.COMMAND, 2, fn.configRead(PciConfig.COMMAND, 2) | PciCommand.INTX_DISABLE);
    fn.core.configChanged();
    expect(intx).toEqual([]);
    expect(fn.configRead(PciConfig.STATUS, 2) & 0x8).toBe(0x8);
    fn.configWrite(PciConfig.COMMAND, 2, fn.configRead(PciConfig.COMMAND, 2) & ~PciCommand.INTX_DISABLE);
    expect(intx).toEqual([true, false]);
  });

  it('reading the ISR returns its bits once and clears them (spec 4.1.4.5.1)', async () => {
    const { fn, cap } = await running();
    fn.configWrite(cap + Msix.FLAGS, 2, 0);
    fn.configWrite(PciConfig.COMMAND, 2, fn.configRead(PciConfig.COMMAND, 2) | PciCommand.INTX_DISABLE);
    fn.core.configChanged();
    expect(fn.barRead(PciBarIndex.VIRTIO, 0x1000, 1)).toBe(2);
    expect(fn.barRead(PciBarIndex.VIRTIO, 0x1000, 1)).toBe(0);
  });

  it('a function without an INTx line reports Interrupt Pin 0 and interrupts only through MSI-X', async () => {
    const { fn, driver, messages } = wire(new NetEchoDevice(), { intx: false });
    expect(fn.configRead(PciConfig.INTERRUPT_PIN, 1)).toBe(0);
    await new VirtioDriver(driver).init();
    fn.core.configChanged();
    expect(messages.at(-1)?.data).toBe(0);
  });
});

describe('power management of a PCI Express function ([PCI-PM] 5.4)', () => {
  it('in D3hot the function decodes nothing, notifications are refused and messages wait; back in D0 it carries on', async () => {
    const wired = wire(new LoopbackDevice(), { express: true });
    const { fn, messages } = wired;
    const virtio = new VirtioDriver(wired.driver);
    await virtio.init();
    wired.messages.length = 0;
    let pm = fn.configRead(PciConfig.CAPABILITY_LIST, 1);
    while (fn.configRead(pm, 1) !== 0x01) pm = fn.configRead(pm + 1, 1);
    const base = fn.bars.find((b) => b.index === PciBarIndex.VIRTIO)?.address as number;
    const unmapped: number[] = [];
    fn.onBarChange((b) => b.address === undefined && unmapped.push(b.index));
    fn.configWrite(pm + 4, 2, 3);
    expect(unmapped).toEqual([PciBarIndex.MSIX, PciBarIndex.VIRTIO]);
    expect(fn.mmioRead(base + CommonCfg.DEVICE_STATUS, 1)).toBeUndefined();
    fn.notify(0);
    expect(fn.violations.dma).toBe(1);
    fn.core.configChanged();
    expect(messages).toEqual([]);
    expect(fn.msixPending(0)).toBe(true);
    // D1 and D2 are not supported: the write is refused.
    fn.configWrite(pm + 4, 2, 1);
    expect(fn.configRead(pm + 4, 2) & 3).toBe(3);
    fn.configWrite(pm + 4, 2, 0);
    expect(messages).toEqual([{ address: 0xfee0_0000, data: 0 }]);
    expect(fn.core.driverOk).toBe(true);
    const result = await virtio.queue(0).request([new Uint8Array([9])], [1]);
    expect(result.data).toEqual(new Uint8Array([9]));
  });
});
