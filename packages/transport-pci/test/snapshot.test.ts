import { LoopbackDevice, PciDriverTransport, VirtioDriver, type PciDriverOptions, type PciFunctionAccess } from '@virtio-ts/driver';
import { GuestMemory } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { PciTransport, type PciTransportSnapshot } from '../src/index.js';

/** A guest whose PCI function can be swapped underneath it, as after migration to another host. */
function migratable(driverOptions: PciDriverOptions) {
  const memory = GuestMemory.create(16 << 20);
  const messages: number[] = [];
  const link: { driver?: PciDriverTransport } = {};
  const devices: LoopbackDevice[] = [];
  const create = (): PciTransport => {
    const device = new LoopbackDevice();
    devices.push(device);
    return new PciTransport({
      device,
      memory,
      express: true,
      msi: {
        signal: (address, data) => {
          messages.push(data);
          link.driver?.deliverMsi(address, data);
        },
      },
      intx: { set: (level) => link.driver?.setIntx(level) },
    });
  };
  const current = { fn: create() };
  const bus: PciFunctionAccess = {
    configRead: (o, s) => current.fn.configRead(o, s),
    configWrite: (o, s, v) => current.fn.configWrite(o, s, v),
    mmioRead: (a, s) => current.fn.mmioRead(a, s),
    mmioWrite: (a, s, v) => current.fn.mmioWrite(a, s, v),
    ioRead: (p, s) => current.fn.ioRead(p, s),
    ioWrite: (p, s, v) => current.fn.ioWrite(p, s, v),
  };
  const driver = new PciDriverTransport(memory, bus, driverOptions);
  link.driver = driver;
  return { memory, messages, current, create, driver, devices };
}

describe('snapshot and restore', () => {
  it.each(['msix', 'intx'] as const)('a running function moves into a new one, which keeps serving the same guest (%s)', async (interrupts) => {
    const { messages, current, create, driver, devices } = migratable({ interrupts });
    const virtio = new VirtioDriver(driver);
    await virtio.init({ packed: true, eventIdx: true });
    expect((await virtio.queue(0).request([new Uint8Array([1, 2, 3])], [3])).len).toBe(3);
    const old = current.fn;
    const generation = driver.configGeneration();
    // Through JSON, as a snapshot travels.
    const saved = JSON.parse(JSON.stringify(old.snapshot())) as PciTransportSnapshot;
    const next = create();
    const mapped: number[] = [];
    next.onBarChange((bar) => bar.address !== undefined && mapped.push(bar.index));
    next.restore(saved);
    current.fn = next;
    expect(next.configSpace()).toEqual(old.configSpace());
    expect(mapped).toEqual(old.bars.filter((b) => b.address !== undefined).map((b) => b.index));
    expect(next.bars.map((b) => b.address)).toEqual(old.bars.map((b) => b.address));
    expect(next.core.driverOk).toBe(true);
    const sent = messages.length;
    const second = await virtio.queue(0).request([new Uint8Array([4, 5])], [2]);
    expect(second.data).toEqual(new Uint8Array([4, 5]));
    expect(devices[1]?.served).toBe(1);
    expect(driver.configGeneration()).toBe(generation);
    if (interrupts === 'msix') expect(messages.slice(sent)).toEqual([1]);
    else expect(virtio.interrupts.unattributed).toBe(2);
  });

  it('a snapshot does not fit a function built with other options', () => {
    const memory = GuestMemory.create(1 << 20);
    const saved = new PciTransport({ device: new LoopbackDevice(), memory, express: true }).snapshot();
    expect(() => new PciTransport({ device: new LoopbackDevice(), memory }).restore(saved)).toThrow(/same options/);
    const withMsix = new PciTransport({ device: new LoopbackDevice(), memory, msi: { signal: () => undefined } });
    expect(() => withMsix.restore(new PciTransport({ device: new LoopbackDevice(), memory }).snapshot())).toThrow(/same options/);
  });
});
