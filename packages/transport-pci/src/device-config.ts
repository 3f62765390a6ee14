import type { VirtioCore } from '@virtio-ts/virtqueue';

// One scratch buffer for every function: accesses are synchronous and never nest.
const scratch = new Uint8Array(4);
const scratchView = new DataView(scratch.buffer);
const bySize = [scratch.subarray(0, 0), scratch.subarray(0, 1), scratch.subarray(0, 2), scratch, scratch];

/**
 * A read of `size` (1, 2 or 4) bytes of device-specific configuration,
 * little-endian as PCI is (spec 4.1.3); outside the space it reads 0 and the
 * status machine counts it.
 */
export function readDeviceConfig(core: VirtioCore, offset: number, size: number): number {
  core.readConfig(offset, bySize[size] as Uint8Array);
  return size === 1 ? scratchView.getUint8(0) : size === 2 ? scratchView.getUint16(0, true) : scratchView.getUint32(0, true);
}

/** A write of the low `size` bytes of `value` to device-specific configuration. */
export function writeDeviceConfig(core: VirtioCore, offset: number, size: number, value: number): void {
  scratchView.setUint32(0, value >>> 0, true);
  core.writeConfig(offset, bySize[size] as Uint8Array);
}
