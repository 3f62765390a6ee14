import { splitRingSizes } from './split.js';
import type { QueueConfig } from './virtqueue.js';

/**
 * Where the three areas of a legacy split queue of `size` entries lie when it
 * starts at `base` (spec 2.7.2, "Legacy Interfaces: A Note on Virtqueue
 * Layout"): the descriptor table at `base`, the available ring right after it
 * (with used_event), then the used ring at the next multiple of `align` (Queue
 * Align: 4096 for legacy PCI, QueueAlign for legacy MMIO; a power of two). The
 * alignment is of the guest-physical address, as Linux's vring_init computes it.
 *
 * The result is arithmetic only: whether the areas lie in guest memory is for
 * the queue's configuration check when the queue is enabled.
 */
export function legacySplitRingLayout(base: number, size: number, align: number): QueueConfig {
  const sizes = splitRingSizes(size);
  const driverAddr = base + sizes.desc;
  const availEnd = driverAddr + sizes.avail;
  return { size, descAddr: base, driverAddr, deviceAddr: Math.ceil(availEnd / align) * align };
}
