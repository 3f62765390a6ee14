import { LoopbackDevice, PciDriverTransport, VirtioDriver, type PciFunctionAccess } from '@virtio-ts/driver';
import { GuestMemory, type ActivationContext, type SharedMemoryMapping } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { PciBarIndex, PciCommand, PciConfig, PciTransport, VirtioPciCap, VirtioPciCapField } from '../src/index.js';
import { NetEchoDevice } from './devices/net-echo.js';
import { wire } from './harness.js';

/** Finds the first virtio capability of `type` in configuration space. */
function virtioCap(fn: PciTransport, type: number): number {
  for (let at = fn.configRead(PciConfig.CAPABILITY_LIST, 1); at !== 0; at = fn.configRead(at + 1, 1)) {
    if (fn.configRead(at, 1) === 0x09 && fn.configRead(at + VirtioPciCapField.CFG_TYPE, 1) === type) return at;
  }
  throw new Error(`no virtio capability of type ${type}`);
}

/** Echoes one frame through the net device and checks it came back on the receive queue. */
async function echo(virtio: VirtioDriver): Promise<void> {
  const rx = virtio.queue(0);
  rx.add([{ addr: virtio.allocate(64), len: 64, writable: true }]);
  rx.kick();
  await virtio.queue(1).request([new Uint8Array(30)], []);
  expect((await rx.waitUsed()).map((used) => used.len)).toEqual([30]);
}

describe('the notification region (spec 4.1.4.4, 4.1.5.2)', () => {
  it('queueNotifyAddress is cap.offset + queue_notify_off * notify_off_multiplier inside the mapped BAR', async () => {
    const { fn, driver } = wire(new NetEchoDevice());
    await new VirtioDriver(driver).init();
    const cap = virtioCap(fn, VirtioPciCap.NOTIFY_CFG);
    const base = fn.bars.find((b) => b.index === PciBarIndex.VIRTIO)?.address as number;
    const offset = fn.configRead(cap + VirtioPciCapField.OFFSET, 4);
    const multiplier = fn.configRead(cap + VirtioPciCapField.NOTIFY_OFF_MULTIPLIER, 4);
    expect(fn.notifyLayout).toEqual({ bar: PciBarIndex.VIRTIO, offset, length: 8, multiplier: 4 });
    expect(fn.queueNotifyAddress(0)).toBe(base + offset);
    expect(fn.queueNotifyAddress(1)).toBe(base + offset + multiplier);
    expect(fn.queueNotifyAddress(2)).toBeUndefined();
    fn.configWrite(PciConfig.COMMAND, 2, 0);
    expect(fn.queueNotifyAddress(0)).toBeUndefined();
  });

  it.each([0, 0x1000])('spec 4.1.4.4: notify_off_multiplier %i works end to end', async (notifyOffMultiplier) => {
    const { fn, driver } = wire(new NetEchoDevice(), { notifyOffMultiplier });
    const virtio = new VirtioDriver(driver);
    await virtio.init();
    await echo(virtio);
    expect(fn.queueNotifyAddress(1)).toBe((fn.queueNotifyAddress(0) as number) + notifyOffMultiplier);
    expect(fn.violations).toEqual({ access: 0, write: 0, dma: 0 });
  });

  it('a VMM can catch notify writes itself, as an ioeventfd would, and hand them to notify()', async () => {
    const device = new LoopbackDevice();
    const memory = GuestMemory.create(16 << 20);
    const fn = new PciTransport({ device, memory, intx: { set: (level) => level && driver.setIntx(level) } });
    const eventfds = new Map<number, number>();
    fn.onBarChange(() => {
      eventfds.clear();
      for (let q = 0; q < fn.core.queueCount; q++) {
        const address = fn.queueNotifyAddress(q);
        if (address !== undefined) eventfds.set(address, q);
      }
    });
    let trapped = 0;
    // The guest's memory accesses, as the VMM dispatches them: eventfd addresses never reach the function's registers.
    const bus: PciFunctionAccess = {
      configRead: (o, s) => fn.configRead(o, s),
      configWrite: (o, s, v) => fn.configWrite(o, s, v),
      mmioRead: (a, s) => fn.mmioRead(a, s),
      mmioWrite: (a, s, v) => {
        const queue = eventfds.get(a);
        if (queue === undefined) return fn.mmioWrite(a, s, v);
        trapped++;
        fn.notify(queue);
        return true;
      },
      ioRead: (p, s) => fn.ioRead(p, s),
      ioWrite: (p, s, v) => fn.ioWrite(p, s, v),
    };
    const driver = new PciDriverTransport(memory, bus);
    const virtio = new VirtioDriver(driver);
    await virtio.init();
    const result = await virtio.queue(0).request([new Uint8Array(16).fill(5)], [16]);
    expect(result.data).toEqual(new Uint8Array(16).fill(5));
    expect(trapped).toBe(1);
    expect(device.served).toBe(1);
  });
});

/** The loopback device with a shared memory window; it keeps the mappings it was activated with. */
class LoopbackWithWindow extends LoopbackDevice {
  readonly sharedMemoryRegions = [
    { id: 0, size: 0x3000 },
    { id: 7, size: 0x1_0000 },
  ];
  mappings: ReadonlyMap<number, SharedMemoryMapping> | undefined;

  override activate(context: ActivationContext): void {
    super.activate(context);
    this.mappings = context.sharedMemory;
  }
}

describe('shared memory regions (spec 2.10, 4.1.4.7)', () => {
  it('each region has a virtio_pci_cap64 in a 64-bit prefetchable BAR; the device sees it where the guest put the BAR', async () => {
    const device = new LoopbackWithWindow();
    const window = new Uint8Array(0x1_0000);
    const { fn, driver } = wire(device, { sharedMemory: new Map([[7, window]]) });
    const shm = fn.bars.find((b) => b.purpose === 'shared-memory');
    expect(shm).toMatchObject({ index: PciBarIndex.SHARED_MEMORY, kind: 'memory64', prefetchable: true, size: 0x2_0000 });
    const caps: { id: number; offset: bigint; length: bigint }[] = [];
    for (let at = fn.configRead(PciConfig.CAPABILITY_LIST, 1); at !== 0; at = fn.configRead(at + 1, 1)) {
      if (fn.configRead(at, 1) !== 0x09 || fn.configRead(at + 3, 1) !== VirtioPciCap.SHARED_MEMORY_CFG) continue;
      expect(fn.configRead(at + 2, 1)).toBe(24);
      expect(fn.configRead(at + VirtioPciCapField.BAR, 1)).toBe(PciBarIndex.SHARED_MEMORY);
      const hi = (field: number): bigint => BigInt(fn.configRead(at + field, 4)) << 32n;
      caps.push({
        id: fn.configRead(at + VirtioPciCapField.ID, 1),
        offset: hi(VirtioPciCapField.OFFSET_HI) | BigInt(fn.configRead(at + VirtioPciCapField.OFFSET, 4)),
        length: hi(VirtioPciCapField.LENGTH_HI) | BigInt(fn.configRead(at + VirtioPciCapField.LENGTH, 4)),
      });
    }
    expect(caps).toEqual([
      { id: 0, offset: 0n, length: 0x3000n },
      { id: 7, offset: 0x3000n, length: 0x1_0000n },
    ]);
    await new VirtioDriver(driver).init();
    const base = shm?.address as number;
    expect(device.mappings?.get(7)).toMatchObject({ id: 7, size: 0x1_0000, guestAddress: base + 0x3000 });
    expect(device.mappings?.get(7)?.bytes).toBe(window);
    // A trapped guest write lands in the region's memory, and a device write is seen by the guest.
    expect(fn.mmioWrite(base + 0x3010, 4, 0xcafe_f00d)).toBe(true);
    expect(new DataView(window.buffer).getUint32(0x10, true)).toBe(0xcafe_f00d);
    device.mappings?.get(0)?.bytes.set([1, 2], 0x2ffe);
    expect(fn.mmioRead(base + 0x2ffe, 2)).toBe(0x0201);
    // The gap between regions and a region's end are not memory.
    expect(fn.mmioRead(base + 0x2fff, 2)).toBe(0);
    expect(fn.mmioRead(base + 0x1_3000, 4)).toBe(0);
    expect(fn.violations.access).toBe(2);
    fn.configWrite(PciConfig.COMMAND, 2, PciCommand.MASTER);
    expect(device.mappings?.size).toBe(0);
  });

  it('region IDs must be unique and backing memory large enough', () => {
    const memory = GuestMemory.create(1 << 20);
    const twice = Object.assign(new LoopbackDevice(), { sharedMemoryRegions: [{ id: 1, size: 4096 }, { id: 1, size: 4096 }] });
    expect(() => new PciTransport({ device: twice, memory })).toThrow(/unique/);
    expect(() => new PciTransport({ device: new LoopbackWithWindow(), memory, sharedMemory: new Map([[0, new Uint8Array(16)]]) })).toThrow(/backing/);
  });
});
