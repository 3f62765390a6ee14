import { DeviceStatus, VIRTIO_F_RING_PACKED, VIRTIO_F_RING_RESET, hasFeature, type QueueConfig } from '@virtio-ts/virtqueue';
import { CommonCfg, VIRTIO_MSI_NO_VECTOR } from './constants.js';
import type { VirtioFunctionState } from './function-state.js';

const TWO_32 = 0x1_0000_0000;

/** The queue address fields as pairs of 32-bit halves (spec 4.1.3: 64-bit fields are two 32-bit fields). */
const ADDRESS_FIELDS: Readonly<Record<number, keyof Omit<QueueConfig, 'size'>>> = {
  [CommonCfg.QUEUE_DESC_LO]: 'descAddr',
  [CommonCfg.QUEUE_DESC_HI]: 'descAddr',
  [CommonCfg.QUEUE_DRIVER_LO]: 'driverAddr',
  [CommonCfg.QUEUE_DRIVER_HI]: 'driverAddr',
  [CommonCfg.QUEUE_DEVICE_LO]: 'deviceAddr',
  [CommonCfg.QUEUE_DEVICE_HI]: 'deviceAddr',
};

/**
 * A driver read of struct virtio_pci_common_cfg (spec 4.1.4.3). Every field
 * must be read at its own width (spec 4.1.3.1); anything else reads 0 and is
 * counted.
 */
export function readCommonConfig(state: VirtioFunctionState, offset: number, size: number, notifyOffMultiplier: number): number {
  const { core } = state;
  if (core.status === 0) core.legacy = false;
  switch (offset) {
    case CommonCfg.DEVICE_FEATURE_SELECT:
      if (size === 4) return state.deviceFeatureSelect;
      break;
    case CommonCfg.DEVICE_FEATURE:
      if (size === 4) return core.deviceFeaturesPage(state.deviceFeatureSelect);
      break;
    case CommonCfg.DRIVER_FEATURE_SELECT:
      if (size === 4) return state.driverFeatureSelect;
      break;
    case CommonCfg.DRIVER_FEATURE:
      if (size === 4) {
        const page = state.driverFeatureSelect;
        return page < 4 ? Number((core.driverFeatures >> BigInt(32 * page)) & 0xffffffffn) : 0;
      }
      break;
    case CommonCfg.CONFIG_MSIX_VECTOR:
      if (size === 2) return state.configVector;
      break;
    case CommonCfg.NUM_QUEUES:
      if (size === 2) return core.queueCount;
      break;
    case CommonCfg.DEVICE_STATUS:
      if (size === 1) return core.status;
      break;
    case CommonCfg.CONFIG_GENERATION:
      if (size === 1) return state.configGeneration();
      break;
    case CommonCfg.QUEUE_SELECT:
      if (size === 2) return state.queueSelect;
      break;
    case CommonCfg.QUEUE_SIZE:
      if (size === 2) return state.selectedQueue()?.size ?? 0;
      break;
    case CommonCfg.QUEUE_MSIX_VECTOR:
      if (size === 2) return state.selectedQueue() === undefined ? VIRTIO_MSI_NO_VECTOR : (state.queueVectors[state.queueSelect] as number);
      break;
    case CommonCfg.QUEUE_ENABLE:
      // Still 1 while a queue reset is finishing: 0 in both fields is the sign it is done (spec 4.1.4.3.1).
      if (size === 2) return state.selectedQueue()?.enabled === true || core.queueResetPending(state.queueSelect) ? 1 : 0;
      break;
    case CommonCfg.QUEUE_NOTIFY_OFF:
      // Each queue has its own notify address, queue_notify_off * notify_off_multiplier (spec 4.1.4.4).
      if (size === 2) return state.selectedQueue() === undefined || notifyOffMultiplier === 0 ? 0 : state.queueSelect;
      break;
    case CommonCfg.QUEUE_DESC_LO:
    case CommonCfg.QUEUE_DRIVER_LO:
    case CommonCfg.QUEUE_DEVICE_LO:
      if (size === 4) return (state.selectedQueue()?.[ADDRESS_FIELDS[offset] as keyof QueueConfig] ?? 0) % TWO_32 >>> 0;
      break;
    case CommonCfg.QUEUE_DESC_HI:
    case CommonCfg.QUEUE_DRIVER_HI:
    case CommonCfg.QUEUE_DEVICE_HI:
      if (size === 4) return Math.floor((state.selectedQueue()?.[ADDRESS_FIELDS[offset] as keyof QueueConfig] ?? 0) / TWO_32) >>> 0;
      break;
    case CommonCfg.QUEUE_NOTIF_CONFIG_DATA:
      // VIRTIO_F_NOTIF_CONFIG_DATA is never offered; the trivial value is the queue index.
      if (size === 2) return state.selectedQueue() === undefined ? 0 : state.queueSelect;
      break;
    case CommonCfg.QUEUE_RESET:
      // 1 while the device is still finishing the queue's reset (spec 4.1.4.3.1).
      if (size === 2) return core.queueResetPending(state.queueSelect) ? 1 : 0;
      break;
    case CommonCfg.ADMIN_QUEUE_INDEX:
    case CommonCfg.ADMIN_QUEUE_NUM:
      // VIRTIO_F_ADMIN_VQ is never offered.
      if (size === 2) return 0;
      break;
  }
  state.violations.access++;
  return 0;
}

/** A driver write to struct virtio_pci_common_cfg (spec 4.1.4.3); wrong widths, read-only fields and refused values are counted. */
export function writeCommonConfig(state: VirtioFunctionState, offset: number, size: number, value: number): void {
  const { core } = state;
  if (core.status === 0) core.legacy = false;
  switch (offset) {
    case CommonCfg.DEVICE_FEATURE_SELECT:
      if (size !== 4) break;
      state.deviceFeatureSelect = value;
      return;
    case CommonCfg.DRIVER_FEATURE_SELECT:
      if (size !== 4) break;
      state.driverFeatureSelect = value;
      return;
    case CommonCfg.DRIVER_FEATURE:
      if (size !== 4) break;
      // The status machine ignores (and counts) feature writes after FEATURES_OK (spec 3.1.1).
      core.writeDriverFeaturesPage(state.driverFeatureSelect, value);
      return;
    case CommonCfg.CONFIG_MSIX_VECTOR:
      if (size !== 2) break;
      state.configVector = state.mapVector(value);
      return;
    case CommonCfg.DEVICE_STATUS:
      if (size !== 1) break;
      state.writeStatus(value);
      return;
    case CommonCfg.QUEUE_SELECT:
      if (size !== 2) break;
      state.queueSelect = value;
      return;
    case CommonCfg.QUEUE_SIZE:
      if (size !== 2) break;
      writeQueueSize(state, value);
      return;
    case CommonCfg.QUEUE_MSIX_VECTOR:
      if (size !== 2) break;
      if (state.selectedQueue() === undefined) state.violations.write++;
      else state.queueVectors[state.queueSelect] = state.mapVector(value);
      return;
    case CommonCfg.QUEUE_ENABLE:
      if (size !== 2) break;
      // The driver MUST NOT write 0 (spec 4.1.4.3.2); the status machine validates the queue on 1.
      if (value === 1) core.enableQueue(state.queueSelect);
      else state.violations.write++;
      return;
    case CommonCfg.QUEUE_DESC_LO:
    case CommonCfg.QUEUE_DRIVER_LO:
    case CommonCfg.QUEUE_DEVICE_LO:
    case CommonCfg.QUEUE_DESC_HI:
    case CommonCfg.QUEUE_DRIVER_HI:
    case CommonCfg.QUEUE_DEVICE_HI: {
      if (size !== 4) break;
      const field = ADDRESS_FIELDS[offset] as keyof Omit<QueueConfig, 'size'>;
      const old = state.selectedQueue()?.[field] ?? 0;
      const high = (offset & 4) !== 0;
      // A pair at or above 2^53 is not exact as a number; the queue check then refuses it at queue_enable.
      const address = high ? value * TWO_32 + (old % TWO_32) : Math.floor(old / TWO_32) * TWO_32 + value;
      if (!core.setQueueConfig(state.queueSelect, { [field]: address })) state.violations.write++;
      return;
    }
    case CommonCfg.QUEUE_RESET:
      if (size !== 2) break;
      // The field exists only once VIRTIO_F_RING_RESET is negotiated (spec 4.1.4.3).
      const negotiated = (core.status & DeviceStatus.FEATURES_OK) !== 0 && hasFeature(core.driverFeatures, VIRTIO_F_RING_RESET);
      if (value !== 1 || !negotiated || state.selectedQueue() === undefined) {
        state.violations.write++;
        return;
      }
      // spec 2.6.1: the queue returns to its reset state, its vector unmapped with it.
      core.resetQueue(state.queueSelect);
      state.queueVectors[state.queueSelect] = VIRTIO_MSI_NO_VECTOR;
      return;
    case CommonCfg.DEVICE_FEATURE:
    case CommonCfg.NUM_QUEUES:
    case CommonCfg.CONFIG_GENERATION:
    case CommonCfg.QUEUE_NOTIFY_OFF:
    case CommonCfg.QUEUE_NOTIF_CONFIG_DATA:
    case CommonCfg.ADMIN_QUEUE_INDEX:
    case CommonCfg.ADMIN_QUEUE_NUM:
      // The driver MUST NOT write these (spec 4.1.4.3.2).
      state.violations.write++;
      return;
  }
  state.violations.access++;
}

/**
 * queue_size: 1 up to the maximum, and a power of two unless the packed layout
 * was negotiated (spec 4.1.4.3.2) — so a split ring never presents anything else. A refused value is not presented back (the
 * device MUST present 0 or a power of two, spec 4.1.4.3.1); the device needs a
 * reset instead, since the driver's rings no longer match the queue.
 */
function writeQueueSize(state: VirtioFunctionState, value: number): void {
  const { core } = state;
  const slot = state.selectedQueue();
  if (slot === undefined || slot.enabled) {
    state.violations.write++;
    return;
  }
  // Until FEATURES_OK the layout is not settled, and a split ring is the stricter assumption.
  const packed = (core.status & DeviceStatus.FEATURES_OK) !== 0 && hasFeature(core.driverFeatures, VIRTIO_F_RING_PACKED);
  if (value < 1 || value > slot.maxSize || (!packed && (value & (value - 1)) !== 0)) {
    state.violations.write++;
    core.needsReset(`queue ${state.queueSelect}: driver wrote queue_size ${value} (maximum ${slot.maxSize}, ${packed ? 'packed' : 'split'} ring)`);
    return;
  }
  core.setQueueConfig(state.queueSelect, { size: value });
}
