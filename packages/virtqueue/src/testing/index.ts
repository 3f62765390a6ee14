export { GuestAllocator, alignUp } from './allocator.js';
export {
  SplitRingDriver,
  placeSplitRing,
  type AddOptions,
  type GuestBuffer,
  type RawSplitDescriptor,
  type SplitRingDriverOptions,
  type UsedElement,
} from './split-ring-driver.js';
export { PackedRingDriver, placePackedRing, type RawPackedDescriptor } from './packed-ring-driver.js';
