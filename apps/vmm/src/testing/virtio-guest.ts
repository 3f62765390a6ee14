import { MmioRegister as M } from '@virtio-ts/transport-mmio';
import { CommonCfg as C, Msix, PciConfig } from '@virtio-ts/transport-pci';
import { DeviceStatus, VIRTIO_F_VERSION_1, featureBit } from '@virtio-ts/virtqueue';
import type { AttachedDevice } from '../virtio/attach.js';
import { ECAM_START } from '../platform/layout.js';
import type { GuestProgram } from './guest-program.js';

const ACK = DeviceStatus.ACKNOWLEDGE;
const DRIVER = ACK | DeviceStatus.DRIVER;
const FEATURES_OK = DRIVER | DeviceStatus.FEATURES_OK;
const DRIVER_OK = FEATURES_OK | DeviceStatus.DRIVER_OK;
const VRING_DESC_F_NEXT = 1;
const VRING_DESC_F_WRITE = 2;

/** Where a split virtqueue lives in guest memory (spec 2.7). */
export interface SplitQueueLayout {
  /** Number of descriptors. */
  readonly size: number;
  /** Guest-physical address of the descriptor table. */
  readonly desc: number;
  /** Guest-physical address of the available (driver) ring. */
  readonly avail: number;
  /** Guest-physical address of the used (device) ring. */
  readonly used: number;
}

/** One buffer of a descriptor chain. */
export interface GuestBuffer {
  /** Guest-physical address of the buffer. */
  readonly address: number;
  /** Length in bytes. */
  readonly length: number;
  /** Whether the device writes it (VIRTQ_DESC_F_WRITE). */
  readonly writable: boolean;
}

/**
 * The register side of a guest driver, as script steps: initialisation up to
 * FEATURES_OK, queue setup, DRIVER_OK, notification and interrupt
 * acknowledgement, for virtio-mmio (spec 4.2.3) or virtio-pci with MSI-X
 * (spec 4.1.5). `queueVector` is the interrupt vector the guest will see for
 * queue 0's used buffer notifications.
 */
export interface GuestTransport {
  /** The vector of queue 0's used buffer notifications. */
  readonly queueVector: number;
  /**
   * Identifies the device, checks the offered feature bits 32-63 against
   * `offeredHigh`, and negotiates VERSION_1 and nothing else.
   */
  initialise(p: GuestProgram, deviceId: number, offeredHigh: number): void;
  /** Programs and enables queue `index`. */
  setupQueue(p: GuestProgram, index: number, layout: SplitQueueLayout): void;
  /** Sets DRIVER_OK. */
  driverOk(p: GuestProgram): void;
  /** Notifies queue `index` (through the ioeventfd). */
  kick(p: GuestProgram, index: number): void;
  /** What the interrupt handler does before EOI. */
  acknowledge(p: GuestProgram): void;
}

/** The guest side of an MMIO device: registers at `base`, level-triggered interrupt on IOAPIC pin `gsi`. */
export function mmioGuestTransport(base: number, gsi: number, vector: number): GuestTransport {
  const r = (offset: number): number => base + offset;
  return {
    queueVector: vector,
    initialise(p, deviceId, offeredHigh) {
      p.routeIoapicPin(gsi, vector, true);
      p.read(4, r(M.MagicValue), 0x74726976).read(4, r(M.Version), 2).read(4, r(M.DeviceID), deviceId);
      p.write(4, r(M.Status), 0).write(4, r(M.Status), ACK).write(4, r(M.Status), DRIVER);
      p.write(4, r(M.DeviceFeaturesSel), 1).read(4, r(M.DeviceFeatures), offeredHigh);
      p.write(4, r(M.DriverFeaturesSel), 0).write(4, r(M.DriverFeatures), 0);
      p.write(4, r(M.DriverFeaturesSel), 1).write(4, r(M.DriverFeatures), Number(featureBit(VIRTIO_F_VERSION_1) >> 32n));
      p.write(4, r(M.Status), FEATURES_OK).read(4, r(M.Status), FEATURES_OK);
    },
    setupQueue(p, index, q) {
      p.write(4, r(M.QueueSel), index).write(4, r(M.QueueSize), q.size);
      p.write(4, r(M.QueueDescLow), q.desc).write(4, r(M.QueueDescHigh), 0);
      p.write(4, r(M.QueueDriverLow), q.avail).write(4, r(M.QueueDriverHigh), 0);
      p.write(4, r(M.QueueDeviceLow), q.used).write(4, r(M.QueueDeviceHigh), 0);
      p.write(4, r(M.QueueReady), 1).read(4, r(M.QueueReady), 1);
    },
    driverOk(p) {
      p.write(4, r(M.Status), DRIVER_OK).read(4, r(M.Status), DRIVER_OK);
    },
    kick(p, index) {
      p.write(4, r(M.QueueNotify), index);
    },
    acknowledge(p) {
      p.read(4, r(M.InterruptStatus), 1).write(4, r(M.InterruptACK), 1);
    },
  };
}

/**
 * The guest side of a PCI device on bus 0 with MSI-X: configuration through
 * ECAM, the virtio structures in the BARs the VMM placed (the guest reads the
 * capability list's pointers and checks them against the transport's
 * layout), MSI-X entry 0 for configuration changes and entry 1 for queue 0.
 */
export function pciGuestTransport(device: AttachedDevice & { kind: 'pci' }, configVector: number, queueVector: number): GuestTransport {
  const t = device.transport;
  const ecam = ECAM_START + (device.slot << 15);
  const space = t.configSpace();
  const virtioBar = t.bars.find((b) => b.purpose === 'virtio')?.address;
  const msixBar = t.bars.find((b) => b.purpose === 'msix')?.address;
  if (virtioBar === undefined || msixBar === undefined) throw new Error('the PCI function has no mapped virtio or MSI-X BAR');
  let msixCap = space[0x34] ?? 0;
  while (msixCap !== 0 && space[msixCap] !== 0x11) msixCap = space[msixCap + 1] ?? 0;
  const c = (offset: number): number => virtioBar + offset;
  return {
    queueVector,
    initialise(p, deviceId, offeredHigh) {
      p.read(4, ecam + PciConfig.VENDOR_ID, ((0x1040 + deviceId) << 16) | 0x1af4);
      p.read(1, ecam + 0x34, space[0x34] ?? 0).read(1, ecam + msixCap, 0x11);
      p.write(2, ecam + PciConfig.COMMAND, 0x6);
      for (const [entry, vector] of [
        [0, configVector],
        [1, queueVector],
      ] as const) {
        const at = msixBar + entry * 16;
        p.write(4, at, 0xfee0_0000).write(4, at + 4, 0).write(4, at + 8, vector).write(4, at + 12, 0);
      }
      p.write(2, ecam + msixCap + Msix.FLAGS, Msix.FLAGS_ENABLE);
      p.write(1, c(C.DEVICE_STATUS), 0).write(1, c(C.DEVICE_STATUS), ACK).write(1, c(C.DEVICE_STATUS), DRIVER);
      p.write(4, c(C.DEVICE_FEATURE_SELECT), 1).read(4, c(C.DEVICE_FEATURE), offeredHigh);
      p.write(4, c(C.DRIVER_FEATURE_SELECT), 0).write(4, c(C.DRIVER_FEATURE), 0);
      p.write(4, c(C.DRIVER_FEATURE_SELECT), 1).write(4, c(C.DRIVER_FEATURE), Number(featureBit(VIRTIO_F_VERSION_1) >> 32n));
      p.write(1, c(C.DEVICE_STATUS), FEATURES_OK).read(1, c(C.DEVICE_STATUS), FEATURES_OK);
      p.write(2, c(C.CONFIG_MSIX_VECTOR), 0).read(2, c(C.CONFIG_MSIX_VECTOR), 0);
    },
    setupQueue(p, index, q) {
      p.write(2, c(C.QUEUE_SELECT), index).write(2, c(C.QUEUE_SIZE), q.size);
      p.write(2, c(C.QUEUE_MSIX_VECTOR), 1).read(2, c(C.QUEUE_MSIX_VECTOR), 1);
      p.write(4, c(C.QUEUE_DESC_LO), q.desc).write(4, c(C.QUEUE_DESC_HI), 0);
      p.write(4, c(C.QUEUE_DRIVER_LO), q.avail).write(4, c(C.QUEUE_DRIVER_HI), 0);
      p.write(4, c(C.QUEUE_DEVICE_LO), q.used).write(4, c(C.QUEUE_DEVICE_HI), 0);
      p.write(2, c(C.QUEUE_ENABLE), 1).read(2, c(C.QUEUE_ENABLE), 1);
    },
    driverOk(p) {
      p.write(1, c(C.DEVICE_STATUS), DRIVER_OK).read(1, c(C.DEVICE_STATUS), DRIVER_OK);
    },
    kick(p, index) {
      const address = t.queueNotifyAddress(index);
      if (address === undefined) throw new Error('the virtio BAR is not mapped');
      p.write(2, address, index);
    },
    acknowledge() {
      // MSI-X: the message itself is the notification; there is nothing to acknowledge.
    },
  };
}

/**
 * Makes buffers `buffers` one descriptor chain starting at descriptor
 * `head`, publishes it as available entry `availIdx` (spec 2.7.13), with the
 * guest's own stores.
 */
export function offerChain(p: GuestProgram, q: SplitQueueLayout, head: number, availIdx: number, buffers: readonly GuestBuffer[]): void {
  buffers.forEach((b, i) => {
    const at = q.desc + (head + i) * 16;
    const last = i === buffers.length - 1;
    p.write(8, at, b.address).write(4, at + 8, b.length);
    p.write(2, at + 12, (last ? 0 : VRING_DESC_F_NEXT) | (b.writable ? VRING_DESC_F_WRITE : 0)).write(2, at + 14, last ? 0 : head + i + 1);
  });
  p.write(2, q.avail + 4 + 2 * (availIdx % q.size), head);
  p.write(2, q.avail + 2, availIdx + 1);
}

/** Reads used ring entry `usedIdx` (spec 2.7.8): the guest prints idx, id and len, checked against the expectation. */
export function checkUsed(p: GuestProgram, q: SplitQueueLayout, usedIdx: number, head: number, length: number): void {
  p.read(2, q.used + 2, usedIdx + 1);
  const at = q.used + 4 + 8 * (usedIdx % q.size);
  p.read(4, at, head).read(4, at + 4, length);
}
