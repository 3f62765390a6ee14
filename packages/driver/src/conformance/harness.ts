import { DeviceStatus, GuestMemory, packedRingSizes, splitRingSizes, type VirtioDevice } from '@virtio-ts/virtqueue';
import type { DriverQueue } from '../driver-queue.js';
import { VirtioDriver } from '../driver.js';
import { DriverError } from '../errors.js';
import type { TransportFactory } from '../transport-factory.js';

/** A guest-physical range and the bytes it held when captured. */
export interface MemorySnapshot {
  /** Guest-physical start of the range. */
  readonly addr: number;
  /** The bytes it held. */
  readonly bytes: Uint8Array;
}

/** A device behind a transport, with a driver bound to it. */
export interface Rig<D extends VirtioDevice> {
  /** Guest memory. */
  readonly memory: GuestMemory;
  /** The device under test. */
  readonly device: D;
  /** The driver bound to it through the transport. */
  readonly driver: VirtioDriver;
}

/** Builds memory, device, transport and driver; always resets the device and destroys it afterwards. */
export async function withRig<D extends VirtioDevice>(
  memorySize: number,
  createDevice: () => D | Promise<D>,
  transport: TransportFactory,
  destroyDevice: ((device: D) => void | Promise<void>) | undefined,
  body: (rig: Rig<D>) => Promise<void>,
): Promise<void> {
  const memory = GuestMemory.create(memorySize);
  const device = await createDevice();
  const window = transport.driverWindow?.(memory);
  const driver = new VirtioDriver(transport.create(memory, device), window === undefined ? {} : { window });
  try {
    await body({ memory, device, driver });
  } finally {
    // Stops the device's work before it is destroyed (spec 2.4). A reset that waits for I/O a failed check left
    // held would never complete, so it is not waited for.
    driver.reset().catch(() => undefined);
    await destroyDevice?.(device);
  }
}

/** The three ring areas of a queue, as [addr, len] ranges. */
export function ringRanges(queue: DriverQueue): [number, number][] {
  const { config } = queue;
  if (queue.packed) {
    const sizes = packedRingSizes(config.size);
    return [
      [config.descAddr, sizes.desc],
      [config.driverAddr, sizes.driver],
      [config.deviceAddr, sizes.device],
    ];
  }
  const sizes = splitRingSizes(config.size);
  return [
    [config.descAddr, sizes.desc],
    [config.driverAddr, sizes.avail],
    [config.deviceAddr, sizes.used],
  ];
}

/**
 * Fills every range with a pattern no device writes by chance (0xa5 0x5a ...
 * with the offset mixed in), so that a write of the very bytes a range held
 * before still shows.
 */
export function fillCanary(memory: GuestMemory, ranges: readonly [number, number][]): void {
  for (const [addr, len] of ranges) {
    const bytes = new Uint8Array(len);
    for (let i = 0; i < len; i++) bytes[i] = (i & 1 ? 0x5a : 0xa5) ^ ((i >>> 1) & 0x0f);
    memory.write(addr, bytes);
  }
}

/** Copies the bytes of every range. */
export function snapshot(memory: GuestMemory, ranges: readonly [number, number][]): MemorySnapshot[] {
  return ranges.map(([addr, len]) => {
    const bytes = new Uint8Array(len);
    memory.read(addr, bytes);
    return { addr, bytes };
  });
}

/** The snapshots that overlap none of `exclude`. */
export function outside(snapshots: readonly MemorySnapshot[], exclude: readonly [number, number][]): MemorySnapshot[] {
  return snapshots.filter(({ addr, bytes }) => !exclude.some(([a, l]) => addr < a + l && a < addr + bytes.length));
}

/** The ring areas and in-flight buffers of `queues`. */
export function queueRanges(queues: readonly DriverQueue[]): [number, number][] {
  return queues.flatMap((q) => [...ringRanges(q), ...q.inFlightBuffers().map((b): [number, number] => [b.addr, b.len])]);
}

/** The snapshots whose bytes changed since they were taken, as readable descriptions (how many bytes, the first change). */
export function changedSince(memory: GuestMemory, snapshots: readonly MemorySnapshot[]): string[] {
  const changes: string[] = [];
  for (const { addr, bytes } of snapshots) {
    const now = new Uint8Array(bytes.length);
    memory.read(addr, now);
    const first = now.findIndex((b, i) => b !== bytes[i]);
    if (first < 0) continue;
    const count = now.reduce((n, b, i) => n + (b !== bytes[i] ? 1 : 0), 0);
    changes.push(`${count} of ${bytes.length} bytes at 0x${addr.toString(16)} (first at +${first}: 0x${hex(bytes[first])} became 0x${hex(now[first])})`);
  }
  return changes;
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, '0');
}

/** Waits until the device used chain `id` of `queue`; any other used chain is a failure of the test's assumptions. */
export async function usedChain(queue: DriverQueue, id: number): Promise<{ id: number; len: number }> {
  for (;;) {
    const used = await queue.waitUsed();
    const mine = used.find((u) => u.id === id);
    const others = used.filter((u) => u.id !== id);
    if (others.length > 0) throw new DriverError('device', `queue ${queue.index}: used IDs ${others.map((u) => u.id).join(', ')} while waiting for ID ${id}`);
    if (mine !== undefined) return mine;
  }
}

/** True when the device reports DEVICE_NEEDS_RESET. */
export function needsReset(driver: VirtioDriver): boolean {
  return (driver.checkStatus() & DeviceStatus.DEVICE_NEEDS_RESET) !== 0;
}

/** Every queue's chains in flight. */
export function inFlight(driver: VirtioDriver): number {
  let total = 0;
  for (const queue of driver.activeQueues.values()) total += queue.inFlight;
  return total;
}
