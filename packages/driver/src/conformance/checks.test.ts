import { ChainFault, DeviceStatus, type ActivationContext, type DescriptorChain, type DeviceHost, type Virtqueue } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { LoopbackDevice } from '../loopback-device.js';
import type { TransportFactory } from '../transport-factory.js';
import { CoreTransport } from '../transports/core.js';
import {
  boundsConfigAccess,
  completesMalformedChains,
  flagsCorruptRing,
  refusesUnofferedFeatures,
  resetsWithRequestsInFlight,
  runCheck,
  servesRequests,
  type ConformanceOptions,
  type InFlightHooks,
} from './checks.js';

// Each check must be able to fail: here each meets a device or transport with
// the defect it exists to catch, next to the healthy LoopbackDevice it passes.

const exercise: ConformanceOptions<LoopbackDevice>['exercise'] = async (driver) => {
  const result = await driver.queue(0).request([Uint8Array.of(1, 2, 3)], [3]);
  expect([...result.data]).toEqual([1, 2, 3]);
};

const hold: InFlightHooks<LoopbackDevice> = {
  submit: (driver, device) => {
    device.holdRequests = true;
    driver.queue(0).add([
      { addr: driver.allocate(4), len: 4, writable: false },
      { addr: driver.allocate(4), len: 4, writable: true },
    ]);
    driver.queue(0).kick();
  },
  settle: (device) => {
    device.holdRequests = false;
    device.releaseHeld();
  },
};

/** A loopback device that forgets its reset: held chains are completed into whatever the buffers have become. */
class ForgetfulDevice extends LoopbackDevice {
  private queue0: Virtqueue | undefined;
  protected kept: DescriptorChain[] = [];

  override activate(context: ActivationContext): void {
    super.activate(context);
    this.queue0 = context.queues.get(0);
  }

  override notify(index: number): void {
    if (!this.holdRequests) return super.notify(index);
    for (let chain = this.queue0?.pop() ?? null; chain !== null; chain = this.queue0?.pop() ?? null) this.kept.push(chain);
  }

  override releaseHeld(): number {
    for (const chain of this.kept) chain.writer.fill(chain.writer.remaining, this.lateByte);
    const n = this.kept.length;
    this.kept = [];
    return n;
  }

  /** What the forgotten requests write into their buffers. */
  protected get lateByte(): number {
    return 0xee;
  }
}

/**
 * Forgetful, and its held requests read an all-zero disk: the zeros it writes
 * after the reset are the bytes the driver's buffers already held, so only a
 * canary in them shows the write.
 */
class ZeroImageDevice extends ForgetfulDevice {
  protected override get lateByte(): number {
    return 0;
  }
}

/**
 * A device whose reset waits for the chains it holds: they land in the old
 * buffers, and only then does its status read 0, as spec 2.4 allows.
 */
class DrainingDevice extends ForgetfulDevice {
  private finishReset: (() => void) | undefined;

  override reset(): void | Promise<void> {
    super.reset();
    if (this.kept.length === 0) return;
    return new Promise((resolve) => (this.finishReset = resolve));
  }

  override releaseHeld(): number {
    const n = super.releaseHeld();
    this.finishReset?.();
    this.finishReset = undefined;
    return n;
  }
}

/** A loopback device that gives up (DEVICE_NEEDS_RESET) on the first malformed chain instead of completing it. */
class FragileDevice extends LoopbackDevice {
  private deviceHost: DeviceHost | undefined;
  private queue0: Virtqueue | undefined;

  override attach(host: DeviceHost): void {
    super.attach(host);
    this.deviceHost = host;
  }

  override activate(context: ActivationContext): void {
    super.activate(context);
    this.queue0 = context.queues.get(0);
  }

  override notify(index: number): void {
    const chain = this.queue0?.pop() ?? null;
    if (chain !== null && chain.fault !== ChainFault.NONE) {
      this.deviceHost?.needsReset('malformed chain');
      return;
    }
    if (chain !== null) this.queue0?.undoPop(chain);
    super.notify(index);
  }
}

/** A loopback device that answers with the bytes reversed. */
class BackwardsDevice extends LoopbackDevice {
  private queue0: Virtqueue | undefined;

  override activate(context: ActivationContext): void {
    super.activate(context);
    this.queue0 = context.queues.get(0);
  }

  override notify(): void {
    const queue = this.queue0;
    if (queue === undefined) return;
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      const bytes = new Uint8Array(chain.reader.remaining);
      chain.reader.read(bytes);
      chain.writer.write(bytes.reverse());
      queue.addUsed(chain, bytes.length);
    }
    queue.flush();
  }
}

/** A transport backend that drops feature bits the device did not offer before writing them, so FEATURES_OK sticks. */
class FilteringTransport extends CoreTransport {
  override writeDriverFeatures(features: bigint): void {
    super.writeDriverFeatures(features & this.core.offeredFeatures);
  }
}

/** A transport backend that hides DEVICE_NEEDS_RESET from the driver's status reads. */
class StatusMaskingTransport extends CoreTransport {
  override getStatus(): number {
    return super.getStatus() & ~DeviceStatus.DEVICE_NEEDS_RESET;
  }
}

/** A transport backend that returns 0xff for configuration bytes beyond the device's space. */
class FloatingBusTransport extends CoreTransport {
  override readConfig(offset: number, length: number): Uint8Array {
    const data = super.readConfig(offset, length);
    const size = this.core.device.configSize;
    for (let i = 0; i < length; i++) if (offset + i >= size) data[i] = 0xff;
    return data;
  }
}

function options(createDevice: () => LoopbackDevice): ConformanceOptions<LoopbackDevice> {
  return { createDevice, exercise, inFlight: hold };
}

function over(name: string, make: (...args: ConstructorParameters<typeof CoreTransport>) => CoreTransport): TransportFactory {
  return { name, create: (memory, device) => make(memory, device) };
}

describe('conformance checks catch what they exist to catch', () => {
  it.each([false, true])('spec 2.4: a device completing requests after a reset is caught (packed=%s)', async (packed) => {
    await runCheck(options(() => new LoopbackDevice()), resetsWithRequestsInFlight(packed, hold));
    await runCheck(options(() => new DrainingDevice()), resetsWithRequestsInFlight(packed, hold));
    await expect(runCheck(options(() => new ForgetfulDevice()), resetsWithRequestsInFlight(packed, hold))).rejects.toThrow(
      /old rings and buffers written after the reset/,
    );
  });

  it.each([false, true])('spec 2.4: late writes of the very bytes the buffers held are caught by the canary (packed=%s)', async (packed) => {
    await expect(runCheck(options(() => new ZeroImageDevice()), resetsWithRequestsInFlight(packed, hold))).rejects.toThrow(
      /old rings and buffers written after the reset[^]*became 0x00/,
    );
  });

  it.each([false, true])('spec 2.1.2: a transport that hides DEVICE_NEEDS_RESET fails the corrupt-ring check (packed=%s)', async (packed) => {
    await runCheck(options(() => new LoopbackDevice()), flagsCorruptRing(packed));
    await expect(runCheck(options(() => new LoopbackDevice()), flagsCorruptRing(packed), over('masking', (m, d) => new StatusMaskingTransport(m, d)))).rejects.toThrow(
      /the driver saw DEVICE_NEEDS_RESET/,
    );
  });

  it.each([false, true])('a device that needs a reset after one malformed chain is caught (packed=%s)', async (packed) => {
    await runCheck(options(() => new LoopbackDevice()), completesMalformedChains(packed, false));
    await expect(runCheck(options(() => new FragileDevice()), completesMalformedChains(packed, false))).rejects.toThrow(/DEVICE_NEEDS_RESET/);
  });

  it('a device that answers wrongly fails the layout matrix', async () => {
    const layout = { packed: true, indirect: true, eventIdx: true };
    await runCheck(options(() => new LoopbackDevice()), servesRequests(layout));
    await expect(runCheck(options(() => new BackwardsDevice()), servesRequests(layout))).rejects.toThrow(/expected/);
  });

  it('spec 2.2.2: a transport that lets unoffered features through is caught', async () => {
    await expect(
      runCheck(options(() => new LoopbackDevice()), refusesUnofferedFeatures(), over('filtering', (m, d) => new FilteringTransport(m, d))),
    ).rejects.toThrow(/feature bit 0 \(not offered\) refused at FEATURES_OK/);
  });

  it('spec 2.5: a transport that reads garbage beyond the configuration space is caught', async () => {
    await expect(
      runCheck(options(() => new LoopbackDevice()), boundsConfigAccess(), over('floating', (m, d) => new FloatingBusTransport(m, d))),
    ).rejects.toThrow(/read of 1 bytes at 8/);
  });
});
