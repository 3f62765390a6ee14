import { legacySplitRingLayout } from '@virtio-ts/virtqueue';
import { LEGACY_QUEUE_ALIGN, LegacyIo, VIRTIO_MSI_NO_VECTOR } from './constants.js';
import { readDeviceConfig, writeDeviceConfig } from './device-config.js';
import type { VirtioFunctionState } from './function-state.js';

/** Size of the legacy header: 24 bytes while MSI-X is enabled, else 20 (spec 4.1.4.10). */
export function legacyHeaderSize(msixEnabled: boolean): number {
  return msixEnabled ? 24 : 20;
}

/**
 * A driver read of the legacy I/O BAR of a transitional device (spec 4.1.4.10):
 * the fixed header at its own widths, then device configuration at any width
 * and offset. Legacy configuration is in the guest's byte order, which is
 * little-endian on every platform this transport serves.
 */
export function readLegacy(state: VirtioFunctionState, offset: number, size: number, msixEnabled: boolean): number {
  const { core } = state;
  if (core.status === 0) core.legacy = true;
  const header = legacyHeaderSize(msixEnabled);
  if (offset >= header) return readDeviceConfig(core, offset - header, size);
  const slot = state.selectedQueue();
  switch (offset) {
    case LegacyIo.HOST_FEATURES:
      if (size === 4) return core.deviceFeaturesPage(0);
      break;
    case LegacyIo.GUEST_FEATURES:
      if (size === 4) return Number(core.driverFeatures & 0xffffffffn);
      break;
    case LegacyIo.QUEUE_PFN:
      if (size === 4) return slot?.enabled === true ? slot.descAddr / LEGACY_QUEUE_ALIGN : 0;
      break;
    case LegacyIo.QUEUE_NUM:
      // There is no size negotiation: the queue has its maximum size (spec 4.1.5.1.3.1).
      if (size === 2) return slot?.maxSize ?? 0;
      break;
    case LegacyIo.QUEUE_SEL:
      if (size === 2) return state.queueSelect;
      break;
    case LegacyIo.STATUS:
      if (size === 1) return core.status;
      break;
    case LegacyIo.ISR:
      if (size === 1) return state.readIsr();
      break;
    case LegacyIo.MSI_CONFIG_VECTOR:
      if (size === 2) return state.configVector;
      break;
    case LegacyIo.MSI_QUEUE_VECTOR:
      if (size === 2) return slot === undefined ? VIRTIO_MSI_NO_VECTOR : (state.queueVectors[state.queueSelect] as number);
      break;
  }
  state.violations.access++;
  return 0;
}

/** A driver write to the legacy I/O BAR of a transitional device (spec 4.1.4.10). */
export function writeLegacy(state: VirtioFunctionState, offset: number, size: number, value: number, msixEnabled: boolean): void {
  const { core } = state;
  if (core.status === 0) core.legacy = true;
  const header = legacyHeaderSize(msixEnabled);
  if (offset >= header) {
    writeDeviceConfig(core, offset - header, size, value);
    return;
  }
  switch (offset) {
    case LegacyIo.GUEST_FEATURES:
      if (size !== 4) break;
      core.writeDriverFeaturesPage(0, value);
      return;
    case LegacyIo.QUEUE_PFN:
      if (size !== 4) break;
      writeQueuePfn(state, value);
      return;
    case LegacyIo.QUEUE_SEL:
      if (size !== 2) break;
      state.queueSelect = value;
      return;
    case LegacyIo.QUEUE_NOTIFY:
      if (size !== 2) break;
      state.hooks.notify(value);
      return;
    case LegacyIo.STATUS:
      if (size !== 1) break;
      state.writeStatus(value);
      return;
    case LegacyIo.MSI_CONFIG_VECTOR:
      if (size !== 2) break;
      state.configVector = state.mapVector(value);
      return;
    case LegacyIo.MSI_QUEUE_VECTOR:
      if (size !== 2) break;
      if (state.selectedQueue() === undefined) state.violations.write++;
      else state.queueVectors[state.queueSelect] = state.mapVector(value);
      return;
    case LegacyIo.HOST_FEATURES:
    case LegacyIo.QUEUE_NUM:
    case LegacyIo.ISR:
      state.violations.write++;
      return;
  }
  state.violations.access++;
}

/**
 * Queue Address: a page frame number activates the queue in the legacy
 * layout; 0 deactivates it (Linux's legacy driver writes 0 when it deletes a
 * queue, possibly mid-initialisation, so this resets only that queue).
 */
function writeQueuePfn(state: VirtioFunctionState, pfn: number): void {
  const { core } = state;
  const slot = state.selectedQueue();
  if (slot === undefined) {
    state.violations.write++;
    return;
  }
  if (pfn === 0) {
    if (slot.enabled) core.disableQueue(state.queueSelect);
    return;
  }
  if (slot.enabled) {
    state.violations.write++;
    return;
  }
  // The used ring is on the 4096-byte boundary after the available ring (spec 4.1.5.1.3.1).
  core.setQueueConfig(state.queueSelect, legacySplitRingLayout(pfn * LEGACY_QUEUE_ALIGN, slot.maxSize, LEGACY_QUEUE_ALIGN));
  core.enableQueue(state.queueSelect);
}
