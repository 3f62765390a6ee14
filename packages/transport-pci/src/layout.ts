import type { SharedMemoryRegionSpec, VirtioDevice } from '@virtio-ts/virtqueue';
import { Bar, isPowerOfTwo } from './bar.js';
import { legacyHeaderSize } from './legacy-io.js';
import type { MsixTable } from './msix.js';

/** BAR numbers, as QEMU lays out a virtio function. */
export const PciBarIndex = {
  /** The legacy I/O interface of a transitional device. */
  LEGACY: 0,
  /** The MSI-X table and PBA. */
  MSIX: 1,
  /** Shared memory regions (64-bit, so BARs 2-3). */
  SHARED_MEMORY: 2,
  /** The virtio structures (64-bit, so BARs 4-5). */
  VIRTIO: 4,
} as const;

/** Each structure in the virtio BAR starts on its own page, so a VMM can map or trap pages one by one. */
export const PAGE = 0x1000;
/** Offset of the ISR status in the virtio BAR (common configuration is at 0). */
export const ISR_OFFSET = PAGE;
/** Offset of device-specific configuration in the virtio BAR. */
export const DEVICE_CFG_OFFSET = 2 * PAGE;

/** A shared memory region placed in its BAR, with the memory behind it. */
export interface SharedRegion extends SharedMemoryRegionSpec {
  /** Offset in the shared memory BAR. */
  readonly offset: number;
  /** The memory behind the region (the VMM's, or allocated here). */
  readonly bytes: Uint8Array;
  /** `bytes`, for trapped accesses. */
  readonly view: DataView;
}

/** Where everything of a function is: its BARs and the structures in them. */
export interface FunctionLayout {
  /** The BARs the function implements, by ascending index. */
  readonly bars: readonly Bar[];
  /** Offset of the PBA in the MSI-X BAR (the table is at 0). */
  readonly pbaOffset: number;
  /** Offset of the notification structure in the virtio BAR. */
  readonly notifyOffset: number;
  /** Length of the notification structure. */
  readonly notifyLength: number;
  /** notify_off_multiplier. */
  readonly multiplier: number;
  /** The device's shared memory regions, placed in the shared memory BAR. */
  readonly sharedRegions: readonly SharedRegion[];
}

/** What of the transport's options shapes the layout. */
export interface LayoutOptions {
  /** A transitional function: the legacy I/O BAR too. */
  readonly transitional: boolean;
  /** notify_off_multiplier. */
  readonly notifyOffMultiplier: number;
  /** Memory the VMM supplies behind shared memory regions, by shmid. */
  readonly sharedMemory: ReadonlyMap<number, Uint8Array> | undefined;
}

/** Lays out the BARs of `device`'s function; throws if the options cannot make one. */
export function layoutFunction(device: VirtioDevice, msix: MsixTable | undefined, options: LayoutOptions): FunctionLayout {
  const multiplier = options.notifyOffMultiplier;
  if (multiplier !== 0 && (!isPowerOfTwo(multiplier) || multiplier < 4 || multiplier > PAGE)) {
    throw new RangeError(`notifyOffMultiplier ${multiplier} must be 0 or a power of two from 4 to 4096 (spec 4.1.4.4)`);
  }
  const notifyOffset = DEVICE_CFG_OFFSET + alignUp(device.configSize, PAGE);
  // With VIRTIO_F_NOTIFICATION_DATA each queue's location takes 4 bytes (spec 4.1.4.4.1).
  const notifyLength = Math.max(4, multiplier * device.queueMaxSizes.length);
  const bars: Bar[] = [];
  if (options.transitional) {
    for (const max of device.queueMaxSizes) {
      if (max !== 0 && !isPowerOfTwo(max)) throw new RangeError(`a transitional device needs power-of-two queue sizes, not ${max}`);
    }
    bars.push(new Bar(PciBarIndex.LEGACY, 'io', nextPowerOfTwo(legacyHeaderSize(true) + device.configSize), 'legacy'));
  }
  const pbaOffset = msix === undefined ? 0 : alignUp(msix.tableBytes, PAGE);
  if (msix !== undefined) bars.push(new Bar(PciBarIndex.MSIX, 'memory32', nextPowerOfTwo(pbaOffset + msix.pbaBytes), 'msix'));
  const sharedRegions = layoutSharedMemory(device.sharedMemoryRegions ?? [], options.sharedMemory);
  const lastRegion = sharedRegions.at(-1);
  if (lastRegion !== undefined) {
    bars.push(new Bar(PciBarIndex.SHARED_MEMORY, 'memory64', nextPowerOfTwo(lastRegion.offset + lastRegion.size), 'shared-memory', true));
  }
  // The ISR status clears on read, so the virtio BAR is not prefetchable.
  bars.push(new Bar(PciBarIndex.VIRTIO, 'memory64', nextPowerOfTwo(notifyOffset + alignUp(notifyLength, PAGE)), 'virtio'));
  return { bars, pbaOffset, notifyOffset, notifyLength, multiplier, sharedRegions };
}

/** Places each region on its own page in the shared memory BAR, with its backing memory. */
function layoutSharedMemory(specs: readonly SharedMemoryRegionSpec[], backing: ReadonlyMap<number, Uint8Array> | undefined): SharedRegion[] {
  const regions: SharedRegion[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (!Number.isInteger(spec.id) || spec.id < 0 || spec.id > 0xff || regions.some((r) => r.id === spec.id)) {
      throw new RangeError(`shared memory region id ${spec.id} must be a unique u8 (spec 4.1.4.7)`);
    }
    if (!Number.isSafeInteger(spec.size) || spec.size <= 0) throw new RangeError(`shared memory region ${spec.id}: size ${spec.size} is not positive`);
    const bytes = backing?.get(spec.id) ?? new Uint8Array(spec.size);
    if (bytes.length < spec.size) throw new RangeError(`shared memory region ${spec.id}: backing holds ${bytes.length} of ${spec.size} bytes`);
    regions.push({ id: spec.id, size: spec.size, offset, bytes, view: new DataView(bytes.buffer, bytes.byteOffset, spec.size) });
    offset = alignUp(offset + spec.size, PAGE);
  }
  return regions;
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

function nextPowerOfTwo(value: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(value, 1)));
}
