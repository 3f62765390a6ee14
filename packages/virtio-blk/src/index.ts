export * from './constants.js';
export type { BlockBackend } from './backend.js';
export { MemoryBackend, type MemoryBackendOptions } from './memory-backend.js';
export { BLK_CONFIG_SIZE, BlkConfigOffset } from './config.js';
export {
  BLK_RING_FEATURES,
  type BlockGeometry,
  type BlockLifetime,
  type BlockTopology,
  type RangeCommandLimits,
  type VirtioBlkOptions,
} from './options.js';
export { VirtioBlk, type BlkSnapshot } from './device.js';
