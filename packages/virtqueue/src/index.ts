export * from './constants.js';
export { GuestMemory, GuestMemoryError, GuestMemoryRegion, isRange, type MemoryAccess, type MemoryRegionInit } from './memory/guest-memory.js';
export { ChainFault, chainFaultName } from './queue/fault.js';
export type { DescriptorChain } from './queue/chain.js';
export { ChainReader, ChainUnderrunError, ChainWriter } from './queue/cursor.js';
export type { QueueConfig, QueueHooks, QueuePosition, Virtqueue } from './queue/virtqueue.js';
export { createVirtqueue, queueConfigProblem, type CreateVirtqueueOptions } from './queue/create.js';
export type { ByteOrder } from './queue/create.js';
export { legacySplitRingLayout } from './queue/legacy-layout.js';
export { splitRingSizes } from './queue/split.js';
export { packedRingSizes } from './queue/packed.js';
export {
  VIRTIO_DEVICE_CONTRACT_VERSION,
  type ActivationContext,
  type DeviceHost,
  type SharedMemoryMapping,
  type SharedMemoryRegionSpec,
  type TransportInterrupts,
  type VirtioDevice,
} from './device/contract.js';
export type { ConfigField } from './device/contract.js';
export { VirtioCore, type DriverViolations, type QueueSlot, type VirtioCoreOptions, type VirtioCoreSnapshot } from './device/core.js';
