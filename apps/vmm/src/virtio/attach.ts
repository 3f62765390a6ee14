import { MmioRegister, MmioTransport } from '@virtio-ts/transport-mmio';
import { PciCommand, PciConfig, PciTransport, type PciBar } from '@virtio-ts/transport-pci';
import { VIRTIO_F_RING_RESET, featureBit, type VirtioCore, type VirtioDevice } from '@virtio-ts/virtqueue';
import { accessValue, setAccessValue, type BusDevice, type BusRange } from '../bus/bus.js';
import type { Machine } from '../machine.js';
import type { PciFunction } from '../pci/pci-root.js';

/** Which transport carries a device. */
export type TransportKind = 'mmio' | 'pci';

/** A device attached to a machine, with the transport that carries it. */
export type AttachedDevice =
  | { readonly kind: 'mmio'; readonly transport: MmioTransport; readonly name: string }
  | { readonly kind: 'pci'; readonly transport: PciTransport; readonly name: string; readonly slot: number };

/**
 * Attaches `device` on a virtio-mmio slot: the register block on the MMIO
 * bus (announced in the DSDT as LNRO0005), a level-triggered GSI, and one
 * ioeventfd per queue on QueueNotify matched on the queue index, so queue
 * notifications do not exit to the VMM. Notification data is not carried
 * (it would change the value the ioeventfds match on). A reset (Status 0)
 * while the device still has I/O in flight holds the writing vCPU until that
 * I/O is done: a virtio-mmio driver does not poll Status after writing 0, so
 * the write itself must not complete before the reset has (spec 2.4,
 * `VirtioCore.resetPending`).
 */
export function attachMmio(
  machine: Machine,
  device: VirtioDevice,
  name: string,
  log?: (message: string) => void,
  base?: number,
): AttachedDevice & { kind: 'mmio' } {
  const slot = machine.reserveMmioSlot(base);
  const transport = new MmioTransport({
    device,
    memory: machine.memory,
    baseAddress: slot.base,
    size: slot.size,
    irq: { number: slot.gsi, set: (level) => slot.line.set(level) },
    notificationData: false,
    ...(log === undefined ? {} : { log: (m: string) => log(`${name}: ${m}`) }),
  });
  const window: BusDevice = {
    read: (offset, data) => setAccessValue(data, transport.read(offset, data.length)),
    write: (offset, data) => {
      transport.write(offset, data.length, accessValue(data));
      return offset === MmioRegister.Status ? transport.core.resetPending : undefined;
    },
  };
  machine.addMmio(slot.base, slot.size, window, `${name} (virtio-mmio)`);
  for (let queue = 0; queue < device.queueMaxSizes.length; queue++) {
    const notify = (): void => transport.write(transport.notifyAddress - slot.base, 4, queue);
    machine.ioeventfd({ address: transport.notifyAddress, length: 4, datamatch: queue }, notify);
  }
  machine.onTeardown(() => resetDevice(transport.core));
  return { kind: 'mmio', transport, name };
}

/**
 * Attaches `device` as a PCI function on bus 0 with MSI-X: its configuration
 * space behind the root complex (0xCF8/0xCFC and ECAM), its BARs placed in
 * the 32-bit window as firmware would (the guest may move them: the bus
 * windows and ioeventfds follow every BAR change), and one ioeventfd per
 * queue on its notification address.
 */
export function attachPci(machine: Machine, device: VirtioDevice, name: string, log?: (message: string) => void): AttachedDevice & { kind: 'pci' } {
  const slot = machine.pci.freeSlot();
  if (slot < 0) throw new RangeError('PCI bus 0 is full');
  const transport = new PciTransport({
    device,
    memory: machine.memory,
    msi: { signal: (address, data) => void machine.msi.signal({ address: BigInt(address), data }) },
    express: true,
    // 2-byte ioeventfds at each queue's own notify address; notification data would make the writes 4 bytes.
    transportFeatures: featureBit(VIRTIO_F_RING_RESET),
    ...(log === undefined ? {} : { log: (m: string) => log(`${name}: ${m}`) }),
  });
  const fn: PciFunction = {
    configRead: (offset, data) => setAccessValue(data, transport.configRead(offset, data.length)),
    configWrite: (offset, data) => transport.configWrite(offset, data.length, accessValue(data)),
  };
  machine.pci.attach(slot, fn);

  const windows = new Map<number, BusRange>();
  let notifiers: (() => void)[] = [];
  const remap = (bar: PciBar): void => {
    const old = windows.get(bar.index);
    if (old !== undefined) {
      (bar.kind === 'io' ? machine.pio : machine.mmio).unregister(old);
      windows.delete(bar.index);
    }
    if (bar.purpose === 'virtio') {
      for (const remove of notifiers) remove();
      notifiers = [];
    }
    if (bar.address === undefined) return;
    const window: BusDevice = {
      read: (offset, data) => setAccessValue(data, transport.barRead(bar.index, offset, data.length)),
      write: (offset, data) => transport.barWrite(bar.index, offset, data.length, accessValue(data)),
    };
    try {
      windows.set(bar.index, (bar.kind === 'io' ? machine.pio : machine.mmio).register(bar.address, bar.size, window, `${name} BAR ${bar.index}`));
    } catch (error) {
      // The guest placed the BAR over something else: the function does not decode it (as on a real bus, the result is undefined).
      log?.(`${name}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (bar.purpose === 'virtio') {
      for (let queue = 0; queue < device.queueMaxSizes.length; queue++) {
        const address = transport.queueNotifyAddress(queue);
        if (address !== undefined) notifiers.push(machine.ioeventfd({ address, length: 2 }, () => transport.notify(queue)));
      }
    }
  };
  transport.onBarChange((bar) => remap(bar));

  // Firmware's part: place every BAR and enable memory decoding.
  for (const bar of transport.bars) {
    if (bar.kind === 'io') continue;
    const base = machine.allocatePciMemory(bar.size);
    transport.configWrite(PciConfig.BASE_ADDRESS_0 + 4 * bar.index, 4, base);
    if (bar.kind === 'memory64') transport.configWrite(PciConfig.BASE_ADDRESS_0 + 4 * bar.index + 4, 4, 0);
  }
  transport.configWrite(PciConfig.COMMAND, 2, PciCommand.MEMORY);
  machine.onTeardown(() => resetDevice(transport.core));
  return { kind: 'pci', transport, name, slot };
}

/** Resets the device when the machine ends; settles once I/O still in flight has finished with guest RAM. */
function resetDevice(core: VirtioCore): Promise<void> | undefined {
  core.reset();
  return core.resetPending;
}

/** Attaches `device` on the transport `kind` (an MMIO device at `mmioBase` when given). */
export function attachVirtio(
  machine: Machine,
  kind: TransportKind,
  device: VirtioDevice,
  name: string,
  log?: (message: string) => void,
  mmioBase?: number,
): AttachedDevice {
  return kind === 'mmio' ? attachMmio(machine, device, name, log, mmioBase) : attachPci(machine, device, name, log);
}
