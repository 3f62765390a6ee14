import type { QueueConfig } from './virtqueue.js';

/**
 * Where the three areas of a legacy split virtqueue lie (spec 2.7.2): one
 * contiguous block at `queueAddr` holding the descriptor table, the available
 * ring right after it, and the used ring at the next multiple of `align` (the
 * transport's Queue Align). Legacy transports give only `queueAddr`, the size
 * and (on some) the alignment.
 */
export function legacySplitRingLayout(queueAddr: number, size: number, align: number): QueueConfig {
  const driverAddr = queueAddr + 16 * size;
  const availEnd = driverAddr + 2 * (3 + size);
  return { size, descAddr: queueAddr, driverAddr, deviceAddr: Math.ceil(availEnd / align) * align };
}
