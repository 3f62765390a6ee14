/** Why the driver gave up on an operation. */
export type DriverErrorReason =
  /** The device cleared FEATURES_OK: it does not support the features written (spec 3.1.1 step 6). */
  | 'features-refused'
  /** The device does not offer VIRTIO_F_VERSION_1; this driver drives modern devices only (spec 6.1). */
  | 'not-modern'
  /** The device set DEVICE_NEEDS_RESET (spec 2.1.2); reset and re-initialise it. */
  | 'needs-reset'
  /** The driver reset the device or the queue while the request was in flight. */
  | 'reset'
  /** A queue could not be set up or used as asked. */
  | 'queue'
  /** The configuration generation kept changing (spec 2.5.1). */
  | 'config-generation'
  /** The driver was used out of order (e.g. a queue used before init). */
  | 'usage'
  /** The device broke a rule the driver checks (a used ID it never made available, a bad used length). */
  | 'device';

/** An error from {@link VirtioDriver} or a {@link DriverQueue}, with a machine-readable reason. */
export class DriverError extends Error {
  /** Why the operation failed. */
  readonly reason: DriverErrorReason;

  /** Creates the error; `message` says what happened and what to do. */
  constructor(reason: DriverErrorReason, message: string) {
    super(message);
    this.name = 'DriverError';
    this.reason = reason;
  }
}
