import {
  ChainFault,
  DeviceId,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
  featureBit,
  type ActivationContext,
  type Virtqueue,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';

const VIRTIO_NET_F_MAC = 5;
const VIRTIO_NET_F_STATUS = 16;
const VIRTIO_NET_S_LINK_UP = 1;
const RX = 0;
const TX = 1;

/**
 * A small virtio-net device whose wire loops back (spec 5.1): every packet the
 * driver transmits on queue 1 (header and frame) arrives in the next receive
 * buffer on queue 0. Configuration space holds the MAC address and a link
 * status the test can flip, which raises a configuration change.
 */
export class NetEchoDevice implements VirtioDevice {
  readonly contractVersion = 1;
  readonly deviceType = DeviceId.NET;
  readonly deviceFeatures =
    featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_STATUS) | featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(VIRTIO_F_EVENT_IDX);
  readonly queueMaxSizes = [256, 256];
  readonly configSize = 8;
  private readonly config = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56, VIRTIO_NET_S_LINK_UP, 0]);
  private host: { configChanged(): void } | undefined;
  private queues: ReadonlyMap<number, Virtqueue> | undefined;

  attach(host: { configChanged(): void }): void {
    this.host = host;
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(this.config.subarray(offset, offset + data.length));
  }

  writeConfig(): void {
    // The MAC address is read-only without VIRTIO_NET_F_CTRL_MAC_ADDR.
  }

  /** Sets the link state and tells the driver (spec 5.1.4). */
  setLink(up: boolean): void {
    this.config[6] = up ? VIRTIO_NET_S_LINK_UP : 0;
    this.host?.configChanged();
  }

  activate(context: ActivationContext): void {
    this.queues = context.queues;
  }

  reset(): void {
    this.queues = undefined;
  }

  notify(): void {
    const rx = this.queues?.get(RX);
    const tx = this.queues?.get(TX);
    if (rx === undefined || tx === undefined) return;
    for (let n = 0; n < tx.size; n++) {
      const packet = tx.pop();
      if (packet === null) break;
      if (packet.fault !== ChainFault.NONE) {
        tx.addUsed(packet, 0);
        continue;
      }
      const buffer = rx.pop();
      if (buffer === null) {
        // No receive buffer yet: keep the packet until the driver adds one and notifies.
        tx.undoPop(packet);
        break;
      }
      let copied = 0;
      if (buffer.fault === ChainFault.NONE) {
        for (const part of packet.reader.slices()) copied += buffer.writer.write(part);
      }
      rx.addUsed(buffer, copied);
      tx.addUsed(packet, 0);
    }
    rx.flush();
    tx.flush();
  }
}
