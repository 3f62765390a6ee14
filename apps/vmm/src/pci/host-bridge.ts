import type { PciFunction } from './pci-root.js';
import { PCI_CONFIG_SPACE_SIZE } from './pci-root.js';

/** Red Hat's PCI ID for a virtual PCI Express host bridge. */
const VENDOR_ID = 0x1b36;
const DEVICE_ID = 0x0008;
/** Class code 06/00/00: bridge, host bridge. */
const CLASS_HOST_BRIDGE = 0x0600_0000;

/**
 * Device 00:00.0, the host bridge: a type-0 header that identifies itself
 * and has no BARs, no interrupt and nothing writable (the command register
 * reads as memory-space enabled).
 */
export class HostBridge implements PciFunction {
  private readonly space = new DataView(new ArrayBuffer(PCI_CONFIG_SPACE_SIZE));

  /** Builds the read-only header. */
  constructor() {
    const s = this.space;
    s.setUint16(0x00, VENDOR_ID, true);
    s.setUint16(0x02, DEVICE_ID, true);
    s.setUint16(0x04, 0x0002, true);
    s.setUint32(0x08, CLASS_HOST_BRIDGE, true);
    s.setUint16(0x2c, VENDOR_ID, true);
    s.setUint16(0x2e, 0x1100, true);
  }

  /** @inheritDoc */
  configRead(offset: number, data: Uint8Array): void {
    data.set(new Uint8Array(this.space.buffer, offset, data.length));
  }

  /**
   * Ignores the write: nothing in the bridge's header is writable.
   * @inheritDoc
   */
  configWrite(): void {
    // Read-only: the bridge has nothing for the OS to program.
  }
}
