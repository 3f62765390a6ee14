import type { QueueConfig } from '@virtio-ts/virtqueue';
import type { InterruptCause } from './transport.js';

/**
 * Something the driver did or saw, in the order it happened. Passed to the
 * `trace` option of {@link VirtioDriver} (the example prints them; tests can
 * assert on the sequence).
 */
export type DriverEvent =
  /** The driver reset the device (status 0). */
  | { readonly kind: 'reset' }
  /** The driver wrote the device status field; `readBack` is what the device reports afterwards. */
  | { readonly kind: 'status'; readonly written: number; readonly readBack: number }
  /** The driver wrote its features (spec 2.2); the next status event shows whether FEATURES_OK stuck. */
  | { readonly kind: 'features'; readonly offered: bigint; readonly written: bigint }
  /** A queue was placed in guest memory and enabled. */
  | { readonly kind: 'queue'; readonly index: number; readonly packed: boolean; readonly config: QueueConfig }
  /** A queue was reset on its own (VIRTIO_F_RING_RESET). */
  | { readonly kind: 'queue-reset'; readonly index: number }
  /** A chain was made available. */
  | { readonly kind: 'available'; readonly index: number; readonly id: number; readonly descriptors: number; readonly indirect: boolean }
  /** An available buffer notification; `data` is the notification value when VIRTIO_F_NOTIFICATION_DATA is negotiated. */
  | { readonly kind: 'notify'; readonly index: number; readonly data: number | undefined }
  /** Buffers were published but the device asked not to be notified (spec 2.7.10, 2.8.10). */
  | { readonly kind: 'notify-suppressed'; readonly index: number }
  /** The transport delivered an interrupt. */
  | { readonly kind: 'interrupt'; readonly cause: InterruptCause }
  /** The driver took a used element from the ring. */
  | { readonly kind: 'used'; readonly index: number; readonly id: number; readonly len: number }
  /** The configuration generation changed during a read, so the read was repeated (spec 2.5.1). */
  | { readonly kind: 'config-retry'; readonly attempt: number }
  /** The device reports DEVICE_NEEDS_RESET (spec 2.1.2). */
  | { readonly kind: 'needs-reset' };
