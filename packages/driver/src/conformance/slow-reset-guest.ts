import { VirtioDriver, type InitOptions, type VirtioDriverOptions } from '../driver.js';
import type { DriverTransport } from '../transport.js';
import { SlowResetDevice } from './slow-reset-device.js';

/** What {@link slowResetGuest} gives a test: the transport's sides as `connect` returned them, the device and a driver on it. */
export type SlowResetGuest<C extends { readonly driver: DriverTransport }> = C & {
  /** The device, whose resets finish at `device.finishResets()`. */
  readonly device: SlowResetDevice;
  /** A driver on the connection's driver side, initialised. */
  readonly guest: VirtioDriver;
};

/**
 * The set-up of a transport's tests of resets the device finishes later
 * (spec 2.4, 2.6.1): a fresh {@link SlowResetDevice} put behind the transport
 * by `connect` (a transport package's `connectMmio`, `connectPci`, or a
 * factory's `create`), and a {@link VirtioDriver} with `options` on the
 * driver side, initialised with `init`.
 */
export async function slowResetGuest<C extends { readonly driver: DriverTransport }>(
  connect: (device: SlowResetDevice) => C,
  init: InitOptions = {},
  options: VirtioDriverOptions = {},
): Promise<SlowResetGuest<C>> {
  const device = new SlowResetDevice();
  const connection = connect(device);
  const guest = new VirtioDriver(connection.driver, options);
  await guest.init(init);
  return { ...connection, device, guest };
}
