import { VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_RING_RESET, featureBit, type GuestMemory, type VirtioDevice } from '@virtio-ts/virtqueue';
import type { DriverTransport } from './transport.js';
import { CoreTransport } from './transports/core.js';

/** Puts a device behind one kind of transport, for suites that run over several. */
export interface TransportFactory {
  /** Short name for test titles: 'core', 'mmio', 'pci', 'ccw'. */
  readonly name: string;
  /** A transport carrying `device` over `memory`, as a driver sees it. */
  create(memory: GuestMemory, device: VirtioDevice): DriverTransport;
  /**
   * The guest memory the driver may use for rings and buffers, when the
   * transport's driver side keeps structures of its own in guest memory (CCW
   * channel programs). Defaults to the driver's default window.
   */
  readonly driverWindow?: (memory: GuestMemory) => { readonly start: number; readonly end: number };
}

const TRANSPORT_FEATURES = featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET);

/** The device straight behind the status machine ({@link CoreTransport}), carrying NOTIFICATION_DATA and RING_RESET. */
export const coreTransportFactory: TransportFactory = {
  /** 'core'. */
  name: 'core',
  /** A {@link CoreTransport} with the transport features. */
  create: (memory, device) => new CoreTransport(memory, device, { transportFeatures: TRANSPORT_FEATURES }),
};
