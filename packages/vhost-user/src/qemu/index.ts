export { detectAcceleration, findExecutable, type Acceleration } from './host.js';
export { READ_ONLY_SERIAL, RW_EXTENT, blockSuiteChecks, type BlockSuiteBoot } from './block-suite.js';
export { buildGuest, guestBuilderPath, repositoryRoot, type GuestImages } from './guest.js';
export {
  qemuArgs,
  runGuest,
  type BuiltinDisk,
  type CheckResult,
  type GuestRun,
  type Machine,
  type QemuOptions,
  type RunOptions,
  type VhostUserDisk,
} from './qemu.js';
