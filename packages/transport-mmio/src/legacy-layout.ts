import type { QueueConfig } from '@virtio-ts/virtqueue';

/**
 * Where a legacy split queue's three areas lie when it starts at `descAddr`
 * (spec 2.7 "Legacy Interfaces: A Note on Virtqueue Layout"): the descriptor
 * table, the available ring right after it (flags, idx, ring[size],
 * used_event), then the used ring at the next multiple of `align`.
 */
export function legacyQueueLayout(descAddr: number, size: number, align: number): QueueConfig {
  const driverAddr = descAddr + 16 * size;
  const availEnd = driverAddr + 6 + 2 * size;
  return { size, descAddr, driverAddr, deviceAddr: Math.ceil(availEnd / align) * align };
}
