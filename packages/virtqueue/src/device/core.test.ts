import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sameBytes } from '../../test/harness.js';
import {
  DeviceStatus,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
} from '../constants.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { ByteOrder } from '../queue/create.js';
import type { Virtqueue } from '../queue/virtqueue.js';
import { GuestAllocator, SplitRingDriver, placeSplitRing } from '../testing/index.js';
import type { ActivationContext, ConfigField, DeviceHost, VirtioDevice } from './contract.js';
import { VirtioCore, type VirtioCoreOptions } from './core.js';

const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, DEVICE_NEEDS_RESET, FAILED } = DeviceStatus;
const VERSION_1 = featureBit(VIRTIO_F_VERSION_1);
/** A device-specific feature bit the test device offers. */
const DEVICE_F_0 = featureBit(0);

type ActivateMode = 'sync' | 'async' | 'throw' | 'reject';

/**
 * A small but real device: two queues; on a notification it copies each
 * chain's readable bytes into its writable part (a loopback). Configuration
 * space: le32 `value` (read/write). Records what the core asked of it.
 */
class EchoDevice implements VirtioDevice {
  readonly deviceType = 63;
  readonly queueMaxSizes = [16, 8];
  readonly configSize = 8;
  deviceFeatures = VERSION_1 | DEVICE_F_0 | featureBit(VIRTIO_F_EVENT_IDX) | featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_RING_PACKED);
  activateMode: ActivateMode = 'sync';
  /** Feature combinations the device refuses at FEATURES_OK. */
  veto: (features: bigint) => boolean = () => false;
  readonly config = new DataView(new ArrayBuffer(8));
  readonly contexts: ActivationContext[] = [];
  readonly notified: number[] = [];
  readonly queueResets: number[] = [];
  readonly queueEnables: [number, Virtqueue][] = [];
  served = 0;
  resets = 0;
  /** The running queues: from the activation, replaced when a queue is re-enabled. */
  readonly queues = new Map<number, Virtqueue>();
  host: DeviceHost | undefined;
  private finishActivation: ((ok: boolean) => void) | undefined;

  acceptFeatures(features: bigint): boolean {
    return !this.veto(features);
  }

  attach(host: DeviceHost): void {
    this.host = host;
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(new Uint8Array(this.config.buffer, offset, data.length));
  }

  writeConfig(offset: number, data: Uint8Array): void {
    new Uint8Array(this.config.buffer, offset, data.length).set(data);
    this.host?.configChanged();
  }

  activate(context: ActivationContext): void | Promise<void> {
    this.contexts.push(context);
    this.queues.clear();
    for (const [index, queue] of context.queues) this.queues.set(index, queue);
    if (this.activateMode === 'throw') throw new Error('no backend');
    if (this.activateMode === 'reject') return Promise.reject(new Error('backend refused'));
    if (this.activateMode === 'async') {
      return new Promise<void>((resolve, reject) => {
        this.finishActivation = (ok) => (ok ? resolve() : reject(new Error('backend failed late')));
      });
    }
    return undefined;
  }

  /** Resolves (or rejects) a pending async activation. */
  async settle(ok: boolean): Promise<void> {
    this.finishActivation?.(ok);
    await new Promise((r) => setTimeout(r, 0));
  }

  reset(): void {
    this.resets++;
  }

  notify(index: number): void {
    this.notified.push(index);
    const queue = this.queues.get(index);
    if (queue !== undefined) this.serve(queue);
  }

  resetQueue(index: number): void {
    this.queueResets.push(index);
    this.queues.delete(index);
  }

  enableQueue(index: number, queue: Virtqueue): void {
    this.queueEnables.push([index, queue]);
    this.queues.set(index, queue);
    this.serve(queue);
  }

  snapshot(): unknown {
    return { served: this.served, value: this.config.getUint32(0, true) };
  }

  restore(state: unknown): void {
    const s = state as { served: number; value: number };
    this.served = s.served;
    this.config.setUint32(0, s.value, true);
  }

  private serve(queue: Virtqueue): void {
    let chain;
    while ((chain = queue.pop()) !== null) {
      const bytes = new Uint8Array(chain.readableLength);
      chain.reader.read(bytes);
      queue.addUsed(chain, chain.writer.write(bytes));
      this.served++;
    }
    queue.flush();
  }
}

interface Rig {
  core: VirtioCore;
  device: EchoDevice;
  memory: GuestMemory;
  alloc: GuestAllocator;
  queueInterrupts: number[];
  configInterrupts: number;
  log: string[];
}

function rig(options: Partial<VirtioCoreOptions> = {}, device = new EchoDevice()): Rig {
  const memory = GuestMemory.create(1 << 20);
  const r: Rig = {
    core: undefined as unknown as VirtioCore,
    device,
    memory,
    alloc: new GuestAllocator(0x1000, 1 << 20, { seed: 5 }),
    queueInterrupts: [],
    configInterrupts: 0,
    log: [],
  };
  r.core = new VirtioCore({
    device,
    memory,
    interrupts: { queue: (i) => r.queueInterrupts.push(i), config: () => r.configInterrupts++ },
    log: (m) => r.log.push(m),
    ...options,
  });
  return r;
}

/** Driver side: places and enables queue `index` as a split ring; returns its driver. */
function setUpQueue(r: Rig, index: number, size = 8, byteOrder: ByteOrder = 'little-endian'): SplitRingDriver {
  const config = placeSplitRing(r.alloc, size);
  const driver = new SplitRingDriver(r.memory, config, { byteOrder });
  expect(r.core.setQueueConfig(index, config)).toBe(true);
  expect(r.core.enableQueue(index)).toBe(true);
  return driver;
}

/** The initialisation sequence of spec 3.1.1 up to (and including) FEATURES_OK. */
function negotiate(r: Rig, features: bigint): boolean {
  r.core.writeStatus(0);
  r.core.writeStatus(ACKNOWLEDGE);
  r.core.writeStatus(ACKNOWLEDGE | DRIVER);
  for (let page = 0; page < 4; page++) r.core.writeDriverFeaturesPage(page, Number((features >> BigInt(32 * page)) & 0xffffffffn));
  r.core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
  return (r.core.status & FEATURES_OK) !== 0;
}

/** Full initialisation with one split queue; returns the queue's driver. */
function bringUp(r: Rig, features = VERSION_1): SplitRingDriver {
  expect(negotiate(r, features)).toBe(true);
  const driver = setUpQueue(r, 0);
  r.core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
  return driver;
}

/** Sends `text` through queue 0 and returns what came back. */
function echo(r: Rig, driver: SplitRingDriver, text: string): string | undefined {
  const out = r.alloc.alloc(text.length);
  r.memory.write(out, new TextEncoder().encode(text));
  const back = r.alloc.alloc(64);
  driver.add([
    { addr: out, len: text.length, writable: false },
    { addr: back, len: 64, writable: true },
  ]);
  driver.publish();
  r.core.notify(0);
  const used = driver.takeUsed();
  if (used === null) return undefined;
  const bytes = new Uint8Array(used.len);
  r.memory.read(back, bytes);
  return new TextDecoder().decode(bytes);
}

describe('VirtioCore: device status (spec 2.1, 3.1)', () => {
  it('spec 3.1.1: follows the initialisation sequence and activates at DRIVER_OK', () => {
    const r = rig();
    const driver = bringUp(r, VERSION_1 | DEVICE_F_0);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(r.device.contexts).toHaveLength(1);
    expect(r.device.contexts[0]!.features).toBe(VERSION_1 | DEVICE_F_0);
    expect([...r.device.contexts[0]!.queues.keys()]).toEqual([0]);
    expect(echo(r, driver, 'ping')).toBe('ping');
    expect(r.queueInterrupts).toEqual([0]);
  });

  it('spec 3.1.1: status writes that skip a step are ignored and counted', () => {
    const r = rig();
    r.core.writeStatus(DRIVER);
    expect(r.core.status).toBe(0);
    r.core.writeStatus(ACKNOWLEDGE);
    r.core.writeStatus(ACKNOWLEDGE | FEATURES_OK);
    expect(r.core.status).toBe(ACKNOWLEDGE);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER);
    r.core.writeDriverFeaturesPage(1, 1);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER);
    expect(r.device.contexts).toHaveLength(0);
    expect(r.core.violations.status).toBe(3);
  });

  it('spec 2.1.1: a status write that clears a bit is ignored; FAILED may be set at any step', () => {
    const r = rig();
    r.core.writeStatus(ACKNOWLEDGE);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER);
    r.core.writeStatus(DRIVER);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER);
    expect(r.core.violations.status).toBe(1);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | FAILED);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER | FAILED);
  });

  it('spec 3.4: SUSPEND (16; VIRTIO_F_SUSPEND is never offered) and reserved status bits are ignored', () => {
    const SUSPEND = 16;
    const r = rig();
    r.core.writeStatus(ACKNOWLEDGE | SUSPEND | 0x20);
    expect(r.core.status).toBe(ACKNOWLEDGE);
    bringUp(r);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK | SUSPEND);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(r.device.resets).toBe(0);
  });

  it('spec 2.1: the driver cannot set DEVICE_NEEDS_RESET, nor clear it by rewriting status', () => {
    const r = rig();
    r.core.writeStatus(ACKNOWLEDGE | DEVICE_NEEDS_RESET);
    expect(r.core.status).toBe(ACKNOWLEDGE);
    r.core.needsReset('test');
    r.core.writeStatus(ACKNOWLEDGE | DRIVER);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET);
  });

  it('spec 2.1.2: DEVICE_NEEDS_RESET sends a configuration change notification only after DRIVER_OK', () => {
    const r = rig();
    r.core.needsReset('before');
    expect(r.configInterrupts).toBe(0);
    const s = rig();
    bringUp(s);
    s.core.needsReset('after');
    s.core.needsReset('again');
    expect(s.core.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(s.configInterrupts).toBe(1);
    expect(s.core.needsResetReason).toBe('again');
  });

  it('spec 2.1.2: a device in DEVICE_NEEDS_RESET is not activated by DRIVER_OK', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1)).toBe(true);
    r.core.setQueueConfig(0, { size: 32 });
    expect(r.core.enableQueue(0)).toBe(false);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(r.core.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(r.device.contexts).toHaveLength(0);
  });

  it('spec 2.4.1: status 0 resets: queues detach, features clear, the device forgets its activation', () => {
    const r = rig();
    const driver = bringUp(r);
    const context = r.device.contexts[0]!;
    const queue = context.queues.get(0)!;
    r.core.writeStatus(0);
    expect(r.core.status).toBe(0);
    expect(r.core.driverFeatures).toBe(0n);
    expect(r.device.resets).toBe(1);
    expect(context.signal.aborted).toBe(true);
    expect(queue.detached).toBe(true);
    expect(r.core.queueSlot(0)).toMatchObject({ enabled: false, queue: undefined, size: 16, descAddr: 0 });
    // spec 2.4.1: no interaction with the queues after reset.
    driver.add([{ addr: r.alloc.alloc(4), len: 4, writable: false }]);
    driver.publish();
    r.core.notify(0);
    expect(driver.usedPending).toBe(0);
    expect(r.device.notified).toEqual([]);
  });

  it('spec 2.4: resetting a device that was never activated does not call its reset', () => {
    const r = rig();
    r.core.writeStatus(ACKNOWLEDGE);
    r.core.writeStatus(0);
    expect(r.device.resets).toBe(0);
  });
});

describe('VirtioCore: a reset that waits for in-flight I/O (spec 2.4, 2.6.1)', () => {
  /** An EchoDevice whose reset and queue reset finish only when the test says so. */
  class SlowResetDevice extends EchoDevice {
    finishReset: (() => void) | undefined;
    finishQueueReset: (() => void) | undefined;
    override deviceFeatures = VERSION_1 | featureBit(VIRTIO_F_RING_RESET);

    override reset(): Promise<void> {
      super.reset();
      return new Promise<void>((resolve) => (this.finishReset = resolve));
    }

    override resetQueue(index: number): Promise<void> {
      super.resetQueue(index);
      return new Promise<void>((resolve) => (this.finishQueueReset = resolve));
    }
  }

  it('spec 2.4: status keeps reading non-zero until the device has finished, then 0; the driver is ignored meanwhile', async () => {
    const device = new SlowResetDevice();
    const r = rig({}, device);
    bringUp(r);
    r.core.writeStatus(0);
    expect(device.resets).toBe(1);
    expect(r.core.status).not.toBe(0);
    expect(r.core.driverOk).toBe(false);
    const pending = r.core.resetPending;
    expect(pending).toBeInstanceOf(Promise);
    r.core.writeStatus(ACKNOWLEDGE);
    expect(r.core.violations.status).toBe(1);
    expect(r.core.setQueueConfig(0, { size: 8 })).toBe(false);
    r.core.configChanged();
    expect(r.configInterrupts).toBe(0);
    device.finishReset?.();
    await pending;
    expect(r.core.status).toBe(0);
    expect(r.core.resetPending).toBeUndefined();
    bringUp(r);
    expect(r.core.status & DRIVER_OK).toBe(DRIVER_OK);
  });

  it('spec 2.6.1: a queue reset keeps reading as ongoing until the device has finished; the queue cannot be enabled meanwhile', async () => {
    const device = new SlowResetDevice();
    const r = rig({ transportFeatures: featureBit(VIRTIO_F_RING_RESET) }, device);
    bringUp(r, VERSION_1 | featureBit(VIRTIO_F_RING_RESET));
    r.core.resetQueue(0);
    expect(r.core.queueResetPending(0)).toBe(true);
    const config = placeSplitRing(r.alloc, 8);
    expect(r.core.setQueueConfig(0, config)).toBe(false);
    expect(r.core.enableQueue(0)).toBe(false);
    device.finishQueueReset?.();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(r.core.queueResetPending(0)).toBe(false);
    expect(r.core.setQueueConfig(0, config)).toBe(true);
    expect(r.core.enableQueue(0)).toBe(true);
  });

  it('spec 2.4: a device reset waits for a queue reset still finishing', async () => {
    const device = new SlowResetDevice();
    const r = rig({ transportFeatures: featureBit(VIRTIO_F_RING_RESET) }, device);
    bringUp(r, VERSION_1 | featureBit(VIRTIO_F_RING_RESET));
    r.core.resetQueue(0);
    r.core.writeStatus(0);
    device.finishReset?.();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(r.core.status).not.toBe(0);
    device.finishQueueReset?.();
    await r.core.resetPending;
    expect(r.core.status).toBe(0);
  });
});

describe('VirtioCore: feature negotiation (spec 2.2)', () => {
  it('spec 2.2: offers the device features that the core and transport support, in 32-bit pages', () => {
    const device = new EchoDevice();
    device.deviceFeatures |= featureBit(VIRTIO_F_ACCESS_PLATFORM) | featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET) | featureBit(60);
    const plain = rig({}, device).core;
    expect(plain.offeredFeatures).toBe(VERSION_1 | DEVICE_F_0 | featureBit(VIRTIO_F_EVENT_IDX) | featureBit(VIRTIO_F_INDIRECT_DESC) | featureBit(VIRTIO_F_RING_PACKED) | featureBit(60));
    const carrying = rig({ transportFeatures: featureBit(VIRTIO_F_NOTIFICATION_DATA) | featureBit(VIRTIO_F_RING_RESET) }, device).core;
    expect(carrying.offeredFeatures & featureBit(VIRTIO_F_NOTIFICATION_DATA)).not.toBe(0n);
    expect(carrying.offeredFeatures & featureBit(VIRTIO_F_RING_RESET)).not.toBe(0n);
    expect(carrying.deviceFeaturesPage(0)).toBe(Number(carrying.offeredFeatures & 0xffffffffn));
    expect(carrying.deviceFeaturesPage(1)).toBe(Number((carrying.offeredFeatures >> 32n) & 0xffffffffn));
    expect(carrying.deviceFeaturesPage(1) & 1).toBe(1);
    expect(carrying.deviceFeaturesPage(4)).toBe(0);
    expect(carrying.deviceFeaturesPage(-1)).toBe(0);
  });

  it('spec 2.2: RING_RESET is not offered for a device that cannot reset single queues', () => {
    const device = new EchoDevice();
    device.deviceFeatures |= featureBit(VIRTIO_F_RING_RESET);
    Object.defineProperty(device, 'resetQueue', { value: undefined });
    expect(rig({ transportFeatures: featureBit(VIRTIO_F_RING_RESET) }, device).core.offeredFeatures & featureBit(VIRTIO_F_RING_RESET)).toBe(0n);
  });

  it('spec 2.2.2: FEATURES_OK is refused for a feature the device did not offer', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1 | featureBit(1))).toBe(false);
    expect(r.log.join()).toMatch(/unoffered features 0x2/);
    expect(negotiate(r, VERSION_1 | featureBit(VIRTIO_F_ACCESS_PLATFORM))).toBe(false);
    expect(negotiate(r, VERSION_1 | featureBit(VIRTIO_F_RING_RESET))).toBe(false);
    expect(negotiate(r, VERSION_1 | DEVICE_F_0)).toBe(true);
  });

  it('spec 2.2.2: FEATURES_OK is refused without VIRTIO_F_VERSION_1 on a modern interface', () => {
    const r = rig();
    expect(negotiate(r, DEVICE_F_0)).toBe(false);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER);
  });

  it('spec 2.2.2: FEATURES_OK is refused when the device vetoes the combination', () => {
    const r = rig();
    r.device.veto = (f) => (f & DEVICE_F_0) !== 0n;
    expect(negotiate(r, VERSION_1 | DEVICE_F_0)).toBe(false);
    expect(negotiate(r, VERSION_1)).toBe(true);
  });

  it('spec 2.2.2: a device whose acceptFeatures throws refuses FEATURES_OK and needs a reset', () => {
    const r = rig();
    r.device.veto = () => {
      throw new Error('bad');
    };
    expect(negotiate(r, VERSION_1)).toBe(false);
    expect(r.core.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(r.core.needsResetReason).toMatch(/acceptFeatures failed: bad/);
  });

  it('spec 3.1.1: feature bits written after FEATURES_OK are ignored and counted', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1)).toBe(true);
    r.core.writeDriverFeaturesPage(0, 1);
    r.core.writeDriverFeaturesPage(5, 1);
    expect(r.core.driverFeatures).toBe(VERSION_1);
    expect(r.core.violations.features).toBe(2);
  });
});

describe('VirtioCore: activation (spec 3.1.1 DRIVER_OK)', () => {
  it('spec 2.1.2: activation that throws sets DEVICE_NEEDS_RESET and sends a configuration interrupt', () => {
    const r = rig();
    r.device.activateMode = 'throw';
    const driver = bringUp(r);
    expect(r.core.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(r.core.needsResetReason).toBe('activation failed: no backend');
    expect(r.configInterrupts).toBe(1);
    expect(echo(r, driver, 'x')).toBeUndefined();
  });

  it('spec 2.1.2: activation that rejects sets DEVICE_NEEDS_RESET and sends a configuration interrupt', async () => {
    const r = rig();
    r.device.activateMode = 'reject';
    bringUp(r);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(r.core.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(r.core.needsResetReason).toBe('activation failed: backend refused');
    expect(r.configInterrupts).toBe(1);
  });

  it('spec 3.1.1: notifications during an asynchronous activation are delivered once it completes', async () => {
    const r = rig();
    r.device.activateMode = 'async';
    const driver = bringUp(r);
    expect(echo(r, driver, 'early')).toBeUndefined();
    expect(r.device.notified).toEqual([]);
    await r.device.settle(true);
    expect(r.device.notified).toEqual([0]);
    expect(driver.takeUsed()?.len).toBe(5);
  });

  it('spec 2.4: an asynchronous activation that fails after a reset is ignored', async () => {
    const r = rig();
    r.device.activateMode = 'async';
    bringUp(r);
    r.core.writeStatus(0);
    await r.device.settle(false);
    expect(r.core.status).toBe(0);
    expect(r.configInterrupts).toBe(0);
  });

  it('spec 2.1: notifications before DRIVER_OK, or for disabled or absent queues, are ignored and counted', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1)).toBe(true);
    const driver = setUpQueue(r, 0);
    driver.add([{ addr: r.alloc.alloc(4), len: 4, writable: false }]);
    driver.publish();
    r.core.notify(0);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    r.core.notify(1);
    r.core.notify(7);
    expect(r.device.notified).toEqual([]);
    expect(r.core.violations.notify).toBe(3);
  });

  it('a device callback that throws on notify sets DEVICE_NEEDS_RESET instead of reaching the caller', () => {
    const r = rig();
    bringUp(r);
    r.device.notify = () => {
      throw new Error('boom');
    };
    expect(() => r.core.notify(0)).not.toThrow();
    expect(r.core.needsResetReason).toBe('device notify failed: boom');
  });

  it('spec 2.1.2: a corrupt ring sets DEVICE_NEEDS_RESET and sends a configuration interrupt', () => {
    const r = rig();
    const driver = bringUp(r);
    driver.setAvailIdx(100);
    r.core.notify(0);
    expect(r.core.status & DEVICE_NEEDS_RESET).toBe(DEVICE_NEEDS_RESET);
    expect(r.core.needsResetReason).toMatch(/^queue 0: available index moved from 0 to 100/);
    expect(r.configInterrupts).toBe(1);
  });
});

describe('VirtioCore: queues (spec 2.6)', () => {
  it('spec 2.6: enabling a queue with a size above its maximum sets DEVICE_NEEDS_RESET and leaves it disabled', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1)).toBe(true);
    r.core.setQueueConfig(0, { ...placeSplitRing(r.alloc, 32) });
    expect(r.core.enableQueue(0)).toBe(false);
    expect(r.core.queueSlot(0)?.enabled).toBe(false);
    expect(r.core.needsResetReason).toBe('queue 0: size 32 is above the maximum 16');
  });

  it('spec 2.7: a split queue size that is not a power of two, or rings outside memory, set DEVICE_NEEDS_RESET', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1)).toBe(true);
    r.core.setQueueConfig(0, { ...placeSplitRing(r.alloc, 8), size: 6 });
    expect(r.core.enableQueue(0)).toBe(false);
    expect(r.core.needsResetReason).toBe('queue 0: split queue size 6 is not a power of two');
    const s = rig();
    expect(negotiate(s, VERSION_1)).toBe(true);
    s.core.setQueueConfig(1, { ...placeSplitRing(s.alloc, 8), deviceAddr: 2 << 20 });
    expect(s.core.enableQueue(1)).toBe(false);
    expect(s.core.needsResetReason).toMatch(/^queue 1: \[0x200000, \+70\) is not inside one writable region/);
  });

  it('spec 2.8.10.1: a packed queue may have any size up to the maximum', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1 | featureBit(VIRTIO_F_RING_PACKED))).toBe(true);
    r.core.setQueueConfig(0, { size: 5, descAddr: 0x1000, driverAddr: 0x2000, deviceAddr: 0x2004 });
    expect(r.core.enableQueue(0)).toBe(true);
  });

  it('spec 2.6: queue configuration of an enabled or absent queue is refused and counted', () => {
    const r = rig();
    expect(negotiate(r, VERSION_1)).toBe(true);
    setUpQueue(r, 0);
    expect(r.core.setQueueConfig(0, { size: 4 })).toBe(false);
    expect(r.core.setQueueConfig(2, { size: 4 })).toBe(false);
    expect(r.core.enableQueue(0)).toBe(false);
    expect(r.core.enableQueue(2)).toBe(false);
    expect(r.core.violations.queue).toBe(4);
  });

  it('spec 2.9: records notification data only when VIRTIO_F_NOTIFICATION_DATA was negotiated', () => {
    const device = new EchoDevice();
    device.deviceFeatures |= featureBit(VIRTIO_F_NOTIFICATION_DATA);
    const r = rig({ transportFeatures: featureBit(VIRTIO_F_NOTIFICATION_DATA) }, device);
    bringUp(r, VERSION_1 | featureBit(VIRTIO_F_NOTIFICATION_DATA));
    r.core.notify(0, 0x0005_0000);
    expect(r.core.queueSlot(0)?.queue?.notificationData).toBe(0x0005_0000);
    const s = rig({ transportFeatures: featureBit(VIRTIO_F_NOTIFICATION_DATA) }, device);
    bringUp(s);
    s.core.notify(0, 0x0005_0000);
    expect(s.core.queueSlot(0)?.queue?.notificationData).toBe(-1);
  });

  describe('VIRTIO_F_RING_RESET (spec 2.6.1)', () => {
    const withRingReset = (): Rig => {
      const device = new EchoDevice();
      device.deviceFeatures |= featureBit(VIRTIO_F_RING_RESET);
      return rig({ transportFeatures: featureBit(VIRTIO_F_RING_RESET) }, device);
    };

    it('spec 2.6.1.1.1: a reset queue executes nothing more and forgets its state; spec 2.6.1.2.1: re-enabling observes the new configuration', () => {
      const r = withRingReset();
      const driver = bringUp(r, VERSION_1 | featureBit(VIRTIO_F_RING_RESET));
      expect(echo(r, driver, 'one')).toBe('one');
      const old = r.core.queueSlot(0)!.queue!;
      r.core.resetQueue(0);
      expect(r.device.queueResets).toEqual([0]);
      expect(old.detached).toBe(true);
      expect(r.core.queueSlot(0)).toMatchObject({ enabled: false, queue: undefined, size: 16 });
      expect(echo(r, driver, 'lost')).toBeUndefined();
      // Re-enable with a different size and fresh rings: the new queue starts at index 0.
      const config = placeSplitRing(r.alloc, 4);
      const fresh = new SplitRingDriver(r.memory, config);
      r.core.setQueueConfig(0, config);
      expect(r.core.enableQueue(0)).toBe(true);
      expect(r.device.queueEnables).toHaveLength(1);
      const [index, queue] = r.device.queueEnables[0]!;
      expect(index).toBe(0);
      expect(queue.size).toBe(4);
      expect(queue.position()).toMatchObject({ availIndex: 0, usedIndex: 0 });
      expect(echo(r, fresh, 'two')).toBe('two');
      // The old ring saw nothing more.
      expect(driver.usedPending).toBe(0);
    });

    it('spec 2.6.1: a queue reset without VIRTIO_F_RING_RESET negotiated is ignored and counted', () => {
      const r = withRingReset();
      bringUp(r);
      r.core.resetQueue(0);
      expect(r.device.queueResets).toEqual([]);
      expect(r.core.queueSlot(0)?.queue?.detached).toBe(false);
      expect(r.core.violations.queue).toBe(1);
    });
  });
});

describe('VirtioCore: configuration space (spec 2.5)', () => {
  it('spec 2.5: bounds-checks configuration accesses, zero-filling refused reads', () => {
    const r = rig();
    r.device.config.setUint32(4, 0xaabbccdd, true);
    const data = new Uint8Array(4).fill(0xff);
    expect(r.core.readConfig(4, data)).toBe(true);
    expect([...data]).toEqual([0xdd, 0xcc, 0xbb, 0xaa]);
    data.fill(0xff);
    expect(r.core.readConfig(6, data)).toBe(false);
    expect([...data]).toEqual([0, 0, 0, 0]);
    expect(r.core.readConfig(-1, new Uint8Array(1))).toBe(false);
    expect(r.core.readConfig(0.5, new Uint8Array(1))).toBe(false);
    expect(r.core.writeConfig(8, new Uint8Array(1))).toBe(false);
    expect(r.core.writeConfig(2 ** 53, new Uint8Array(1))).toBe(false);
    expect(r.core.violations.config).toBe(5);
  });

  it('spec 2.5: the configuration generation changes with the configuration; interrupts only after DRIVER_OK', () => {
    const r = rig();
    const g0 = r.core.configGeneration;
    expect(r.core.writeConfig(0, Uint8Array.of(1, 0, 0, 0))).toBe(true);
    expect(r.core.configGeneration).toBe(g0 + 1);
    expect(r.configInterrupts).toBe(0);
    bringUp(r);
    r.core.writeConfig(0, Uint8Array.of(2, 0, 0, 0));
    expect(r.core.configGeneration).toBe(g0 + 2);
    expect(r.configInterrupts).toBe(1);
    r.core.writeStatus(0);
    expect(r.core.configGeneration).toBe(g0 + 2);
  });

  it('a device whose readConfig throws yields zeros and needs a reset', () => {
    const r = rig();
    r.device.readConfig = () => {
      throw new Error('oops');
    };
    const data = new Uint8Array(2).fill(9);
    expect(r.core.readConfig(0, data)).toBe(true);
    expect([...data]).toEqual([0, 0]);
    expect(r.core.needsResetReason).toBe('device readConfig failed: oops');
  });
});

describe('VirtioCore: snapshot and restore', () => {
  it('restores status, features, queue positions and device state, and the ring continues where it was', () => {
    const r = rig();
    const driver = bringUp(r, VERSION_1 | DEVICE_F_0);
    for (const word of ['a', 'bb', 'ccc']) expect(echo(r, driver, word)).toBe(word);
    r.core.writeConfig(0, Uint8Array.of(7, 0, 0, 0));
    const snapshot = JSON.parse(JSON.stringify(r.core.snapshot())) as ReturnType<VirtioCore['snapshot']>;
    expect(snapshot.queues[0]?.position).toMatchObject({ availIndex: 3, usedIndex: 3 });

    // A new core and device over the same guest memory: what a VMM does after migration.
    const device = new EchoDevice();
    const again: Rig = { ...r, device, queueInterrupts: [], configInterrupts: 0 };
    again.core = new VirtioCore({ device, memory: r.memory, interrupts: { queue: (i) => again.queueInterrupts.push(i), config: () => again.configInterrupts++ } });
    again.core.restore(snapshot);
    expect(again.core.status).toBe(r.core.status);
    expect(again.core.driverFeatures).toBe(VERSION_1 | DEVICE_F_0);
    expect(again.core.configGeneration).toBe(r.core.configGeneration);
    expect(device.served).toBe(3);
    expect(device.config.getUint8(0)).toBe(7);
    expect(device.contexts).toHaveLength(1);
    expect(echo(again, driver, 'dddd')).toBe('dddd');
    expect(again.core.queueSlot(0)?.queue?.position()).toMatchObject({ availIndex: 4, usedIndex: 4 });
  });

  it('refuses to snapshot while requests are in flight', () => {
    const r = rig();
    const driver = bringUp(r);
    driver.add([{ addr: r.alloc.alloc(4), len: 4, writable: false }]);
    driver.publish();
    r.core.queueSlot(0)?.queue?.pop();
    expect(() => r.core.snapshot()).toThrow(/in flight/);
  });
});

describe('VirtioCore: legacy interface (spec 2.2.3, 3.1.2)', () => {
  const legacyRig = (): Rig => {
    const r = rig();
    r.core.legacy = true;
    return r;
  };

  it('spec 3.1.2: there is no FEATURES_OK step; DRIVER_OK follows DRIVER and activates', () => {
    const r = legacyRig();
    expect(r.core.deviceFeaturesPage(1)).toBe(0);
    r.core.writeStatus(ACKNOWLEDGE);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER);
    r.core.writeDriverFeaturesPage(0, Number(DEVICE_F_0 | featureBit(VIRTIO_F_EVENT_IDX) | featureBit(1)));
    r.core.writeDriverFeaturesPage(1, 1);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER);
    const driver = setUpQueue(r, 0);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(r.core.status).toBe(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    // Features are kept to what was offered, in 32 bits.
    expect(r.device.contexts[0]?.features).toBe(DEVICE_F_0 | featureBit(VIRTIO_F_EVENT_IDX));
    expect(r.core.violations.features).toBe(1);
    r.core.writeDriverFeaturesPage(0, 0);
    expect(r.core.violations.features).toBe(2);
    expect(echo(r, driver, 'legacy')).toBe('legacy');
  });

  it('spec 3.1.2: a legacy driver may use the device before DRIVER_OK', () => {
    const r = legacyRig();
    r.core.writeStatus(ACKNOWLEDGE);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER);
    const driver = setUpQueue(r, 0);
    expect(echo(r, driver, 'early')).toBe('early');
    expect(r.device.contexts).toHaveLength(1);
    // Features are final from the first use; a second queue set up later still starts.
    r.core.writeDriverFeaturesPage(0, 1);
    expect(r.core.violations.features).toBe(1);
    const second = setUpQueue(r, 1);
    second.add([{ addr: r.alloc.alloc(4), len: 4, writable: false }]);
    second.publish();
    r.core.notify(1);
    expect(second.usedPending).toBe(1);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(r.device.contexts).toHaveLength(1);
    expect(echo(r, driver, 'later')).toBe('later');
  });
});

describe('VirtioCore: a legacy driver on a big-endian guest (spec 2.5.3, 2.7.3)', () => {
  /** EchoDevice declaring its one multi-byte field, le32 `value` at 0; bytes 4-7 are single bytes. Records the writes it is given. */
  class BigEndianEchoDevice extends EchoDevice {
    readonly legacyConfigFields: readonly ConfigField[] = [{ offset: 0, size: 4 }];
    readonly writes: [number, number[]][] = [];

    override writeConfig(offset: number, data: Uint8Array): void {
      this.writes.push([offset, [...data]]);
      super.writeConfig(offset, data);
    }
  }

  const bigEndianRig = (device: EchoDevice = new BigEndianEchoDevice()): Rig => {
    const r = rig({}, device);
    r.core.legacy = true;
    r.core.legacyByteOrder = 'big-endian';
    return r;
  };

  it('spec 2.7.3: the queues are big-endian rings, and the device is told its requests are big-endian', () => {
    const r = bigEndianRig();
    expect(r.core.byteOrder).toBe('big-endian');
    r.core.writeStatus(ACKNOWLEDGE);
    r.core.writeStatus(ACKNOWLEDGE | DRIVER);
    r.core.writeDriverFeaturesPage(0, Number(featureBit(VIRTIO_F_EVENT_IDX)));
    const driver = setUpQueue(r, 0, 8, 'big-endian');
    r.core.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK);
    expect(r.device.contexts[0]?.byteOrder).toBe('big-endian');
    expect(echo(r, driver, 'big-endian')).toBe('big-endian');
    expect(echo(r, driver, 'again')).toBe('again');
    expect(r.core.status & DEVICE_NEEDS_RESET).toBe(0);
  });

  it('spec 2.5.3: declared fields read byte-reversed, other bytes as they are, at any offset and length', () => {
    const r = bigEndianRig();
    r.device.config.setUint32(0, 0x11223344, true);
    r.device.config.setUint32(4, 0x55667788, true);
    const read = (offset: number, length: number): number[] => {
      const data = new Uint8Array(length);
      expect(r.core.readConfig(offset, data)).toBe(true);
      return [...data];
    };
    expect(read(0, 8)).toEqual([0x11, 0x22, 0x33, 0x44, 0x88, 0x77, 0x66, 0x55]);
    expect(read(1, 2)).toEqual([0x22, 0x33]);
    expect(read(3, 2)).toEqual([0x44, 0x88]);
    expect(read(6, 2)).toEqual([0x66, 0x55]);
  });

  it('spec 2.5.3: a write is merged into the big-endian view and reaches the device as whole fields in its layout', () => {
    const r = bigEndianRig();
    const device = r.device as BigEndianEchoDevice;
    r.device.config.setUint32(0, 0x11223344, true);
    expect(r.core.writeConfig(2, Uint8Array.of(0xaa, 0xbb))).toBe(true);
    expect(r.device.config.getUint32(0, true)).toBe(0x1122aabb);
    expect(device.writes).toEqual([[0, [0xbb, 0xaa, 0x22, 0x11]]]);
    expect(r.core.writeConfig(5, Uint8Array.of(0xcc))).toBe(true);
    expect(device.writes[1]).toEqual([5, [0xcc]]);
  });

  it('a device that declares no field layout gives a big-endian legacy driver a closed configuration space', () => {
    const r = bigEndianRig(new EchoDevice());
    r.device.config.setUint32(0, 0x11223344, true);
    const data = new Uint8Array(4).fill(9);
    expect(r.core.readConfig(0, data)).toBe(false);
    expect([...data]).toEqual([0, 0, 0, 0]);
    expect(r.core.writeConfig(0, Uint8Array.of(1, 2, 3, 4))).toBe(false);
    expect(r.device.config.getUint32(0, true)).toBe(0x11223344);
    expect(r.core.violations.config).toBe(2);
    expect(r.log.some((m) => m.includes('legacyConfigFields'))).toBe(true);
  });

  it('spec 2.7.3: a modern driver is little-endian whatever legacyByteOrder says', () => {
    const r = rig({}, new BigEndianEchoDevice());
    r.core.legacyByteOrder = 'big-endian';
    r.device.config.setUint32(0, 0x11223344, true);
    const data = new Uint8Array(4);
    r.core.readConfig(0, data);
    expect(new DataView(data.buffer).getUint32(0, true)).toBe(0x11223344);
    const driver = bringUp(r);
    expect(r.device.contexts[0]?.byteOrder).toBe('little-endian');
    expect(echo(r, driver, 'modern')).toBe('modern');
  });

  it('a malformed field layout is a device bug the core refuses at construction', () => {
    const withFields = (fields: ConfigField[]): EchoDevice => Object.assign(new EchoDevice(), { legacyConfigFields: fields });
    expect(() => rig({}, withFields([{ offset: 6, size: 4 }]))).toThrow(/inside the 8-byte configuration space/);
    expect(() => rig({}, withFields([{ offset: 0, size: 3 }]))).toThrow(/2-, 4- or 8-byte/);
    expect(() => rig({}, withFields([{ offset: 0, size: 4 }, { offset: 2, size: 2 }]))).toThrow(/overlaps/);
    expect(() => rig({}, withFields([{ offset: 0, size: 8 }]))).not.toThrow();
  });
});

describe('VirtioCore: properties', () => {
  const addrArb = fc.oneof(fc.constantFrom(0, 0x1000, 0x2000, 0x3000, 0xfff0, 0x20000), fc.integer({ min: -16, max: 0x30000 }), fc.double(), fc.constant(2 ** 60));
  const opArb = fc.oneof(
    // A well-behaved bring-up with a random feature subset, so later operations reach a live device.
    fc.record({ op: fc.constant('init' as const), mask: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
    fc.record({ op: fc.constant('status' as const), value: fc.oneof(fc.constantFrom(0, 1, 3, 11, 15, 7, 0x40, 0x80), fc.nat({ max: 0xff })) }),
    fc.record({ op: fc.constant('features' as const), page: fc.integer({ min: -1, max: 4 }), value: fc.nat({ max: 0xffffffff }) }),
    fc.record({
      op: fc.constant('queue' as const),
      index: fc.integer({ min: -1, max: 2 }),
      size: fc.oneof(fc.constantFrom(1, 2, 4, 8, 16, 3), fc.integer({ min: -1, max: 70000 })),
      descAddr: addrArb,
      driverAddr: addrArb,
      deviceAddr: addrArb,
    }),
    fc.record({ op: fc.constant('enable' as const), index: fc.integer({ min: -1, max: 2 }) }),
    fc.record({ op: fc.constant('reset' as const), index: fc.integer({ min: -1, max: 2 }) }),
    fc.record({ op: fc.constant('notify' as const), index: fc.integer({ min: -1, max: 2 }), data: fc.nat({ max: 0xffffffff }) }),
    fc.record({
      op: fc.constant('scribble' as const),
      addr: fc.oneof(fc.integer({ min: 0x1000, max: 0x1300 }), fc.integer({ min: 0, max: 0x1fff8 })),
      value: fc.oneof(fc.bigInt({ min: 0n, max: 0xffffn }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    }),
    fc.record({ op: fc.constant('config' as const), write: fc.boolean(), offset: fc.oneof(fc.integer({ min: -2, max: 12 }), fc.double()), len: fc.nat({ max: 9 }) }),
  );

  it('random register-level driver behaviour never throws and never writes outside guest RAM', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(opArb, { maxLength: 60, size: 'large' }), (legacy, ops) => {
        const CANARY = 0x5c;
        const backing = new ArrayBuffer(0x40000);
        const all = new Uint8Array(backing).fill(CANARY);
        const memory = new GuestMemory([{ guestAddress: 0, buffer: backing, byteOffset: 0x10000, size: 0x20000 }]);
        memory.fill(0, 0x20000);
        const device = new EchoDevice();
        device.deviceFeatures |= featureBit(VIRTIO_F_RING_RESET) | featureBit(VIRTIO_F_NOTIFICATION_DATA);
        const core = new VirtioCore({
          device,
          memory,
          interrupts: { queue: () => undefined, config: () => undefined },
          transportFeatures: featureBit(VIRTIO_F_RING_RESET) | featureBit(VIRTIO_F_NOTIFICATION_DATA),
        });
        core.legacy = legacy;
        for (const o of ops) {
          switch (o.op) {
            case 'init': {
              core.writeStatus(0);
              core.writeStatus(ACKNOWLEDGE);
              core.writeStatus(ACKNOWLEDGE | DRIVER);
              const features = (core.offeredFeatures & o.mask) | (legacy ? 0n : VERSION_1);
              for (let page = 0; page < 2; page++) core.writeDriverFeaturesPage(page, Number((features >> BigInt(32 * page)) & 0xffffffffn));
              if (!legacy) core.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
              core.setQueueConfig(0, { size: 8, descAddr: 0x1000, driverAddr: 0x1100, deviceAddr: 0x1200 });
              core.enableQueue(0);
              core.writeStatus(ACKNOWLEDGE | DRIVER | (legacy ? 0 : FEATURES_OK) | DRIVER_OK);
              break;
            }
            case 'status':
              core.writeStatus(o.value);
              break;
            case 'features':
              core.writeDriverFeaturesPage(o.page, o.value);
              break;
            case 'queue':
              core.setQueueConfig(o.index, { size: o.size, descAddr: o.descAddr, driverAddr: o.driverAddr, deviceAddr: o.deviceAddr });
              break;
            case 'enable':
              core.enableQueue(o.index);
              break;
            case 'reset':
              core.resetQueue(o.index);
              break;
            case 'notify':
              core.notify(o.index, o.data);
              break;
            case 'scribble':
              memory.setU64(o.addr, o.value);
              break;
            case 'config':
              if (o.write) core.writeConfig(o.offset, new Uint8Array(o.len));
              else core.readConfig(o.offset, new Uint8Array(o.len));
              break;
          }
          expect(core.status).toBe(core.status & 0xff);
        }
        expect(sameBytes(all.subarray(0, 0x10000), new Uint8Array(0x10000).fill(CANARY))).toBe(true);
        expect(sameBytes(all.subarray(0x30000), new Uint8Array(0x10000).fill(CANARY))).toBe(true);
      }),
      { numRuns: 300 },
    );
  }, 60_000);
});
