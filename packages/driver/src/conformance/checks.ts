import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  VIRTQ_DESC_F_NEXT,
  featureBit,
  hasFeature,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import { SplitRingDriver } from '@virtio-ts/virtqueue/testing';
import { expect } from 'vitest';
import type { InitOptions, VirtioDriver } from '../driver.js';
import { DriverError } from '../errors.js';
import { featureNames } from '../names.js';
import { coreTransportFactory, type TransportFactory } from '../transport-factory.js';
import { changedSince, fillCanary, inFlight, needsReset, outside, queueRanges, ringRanges, snapshot, usedChain, withRig, type Rig } from './harness.js';
import { malformedChainsFor } from './malformed.js';

/**
 * How the suite keeps requests in flight across a reset. `submit` makes
 * requests available that the device will not complete before `settle`
 * (use `DriverQueue.add` and `kick`, not `request`, whose promise the reset
 * rejects). `settle` lets the device finish everything it started, resolving
 * once it has. A device may finish that I/O before its status reads 0 after
 * the reset (spec 2.4): the suite calls `settle` while the reset is under way
 * when the device reports it so (its reset() returned a promise), else after
 * the new initialisation. From status 0 on none of it may reach guest memory.
 */
export interface InFlightHooks<D extends VirtioDevice> {
  /** Leaves at least one request in flight. */
  readonly submit: (driver: VirtioDriver, device: D) => void | Promise<void>;
  /** Lets the device complete (or drop) what it was holding. */
  readonly settle: (device: D) => void | Promise<void>;
}

/** What the conformance suite needs to know about a device. */
export interface ConformanceOptions<D extends VirtioDevice> {
  /** Title of the suite. Defaults to `virtio conformance`. */
  readonly name?: string;
  /** A fresh device for each test. */
  readonly createDevice: () => D | Promise<D>;
  /** Releases what the device holds (files, sockets) after each test. */
  readonly destroyDevice?: (device: D) => void | Promise<void>;
  /** Transports to run every test over. Defaults to {@link coreTransportFactory}. */
  readonly transports?: readonly TransportFactory[];
  /**
   * Performs one or more valid requests through `driver` and asserts the
   * answers. Called after every initialisation the suite makes, whatever the
   * layout; it may use any queue the device has.
   */
  readonly exercise: (driver: VirtioDriver, device: D) => Promise<void>;
  /** Device-specific feature bits to negotiate (ring features are the suite's business). */
  readonly features?: bigint;
  /** Device-specific setup after FEATURES_OK (see {@link InitOptions.setup}). */
  readonly setup?: InitOptions['setup'];
  /** Fills queues before DRIVER_OK (see {@link InitOptions.populate}). */
  readonly populate?: InitOptions['populate'];
  /** A queue the device takes chains from as soon as it is notified; malformed chains go there. Defaults to 0. */
  readonly requestQueue?: number;
  /** Queue size the suite asks for (smaller rings wrap sooner). Defaults to 16. */
  readonly queueSize?: number;
  /** How many times `exercise` runs after each initialisation in the layout matrix. Defaults to 3. */
  readonly rounds?: number;
  /** Guest memory size in bytes. Defaults to 4 MiB. */
  readonly memorySize?: number;
  /** Lets the suite test a reset with requests in flight; without it that test is skipped (loudly). */
  readonly inFlight?: InFlightHooks<D>;
  /**
   * A reason to skip `check` over `transport` (printed as a `SKIP:` line), or
   * undefined to run it: for what a transport cannot do at all, e.g. CCW
   * revision 1 has no READ_STATUS, so no driver can see DEVICE_NEEDS_RESET.
   */
  readonly skip?: (check: Check<D>, transport: TransportFactory) => string | undefined;
}

/** Thrown by a check that cannot run here (a feature not offered); the suite turns it into a loud skip. */
export class CheckSkipped extends Error {
  /** Creates the skip with the reason to print. */
  constructor(reason: string) {
    super(reason);
    this.name = 'CheckSkipped';
  }
}

/** The suite's options resolved, as the checks use them. */
export interface CheckEnv<D extends VirtioDevice> {
  /** The options as given. */
  readonly options: ConformanceOptions<D>;
  /** {@link ConformanceOptions.requestQueue}, defaulted. */
  readonly requestQueue: number;
  /** {@link ConformanceOptions.rounds}, defaulted. */
  readonly rounds: number;
  /** Initialises the device with the suite's device-specific options and the check's ring options. */
  init(driver: VirtioDriver, ring?: InitOptions): Promise<bigint>;
  /** Runs `exercise` and checks the device stayed healthy. */
  exercise(rig: Rig<D>, what: string): Promise<void>;
}

/** What a check is about; several checks (one per layout) can share an id. */
export type CheckId =
  | 'serves-requests'
  | 'unoffered-features'
  | 'config-bounds'
  | 'malformed-chains'
  | 'corrupt-ring'
  | 'reset-in-flight'
  | 'reinitialisation'
  | 'queue-reset'
  | 'in-order'
  | 'notification-data';

/** One conformance check: a title citing the spec and a body run against a fresh device. */
export interface Check<D extends VirtioDevice> {
  /** What the check is about, for {@link ConformanceOptions.skip}. */
  readonly id: CheckId;
  /** Test title, citing the spec section. */
  readonly title: string;
  /** Runs the check; throws (an assertion) on failure, {@link CheckSkipped} when it cannot run here. */
  readonly run: (rig: Rig<D>, env: CheckEnv<D>) => Promise<void>;
}

/** The ring options the layout matrix covers. */
interface Layout {
  readonly packed: boolean;
  readonly indirect: boolean;
  readonly eventIdx: boolean;
}

const LAYOUTS: readonly Layout[] = [false, true].flatMap((packed) =>
  [false, true].flatMap((indirect) => [false, true].map((eventIdx) => ({ packed, indirect, eventIdx }))),
);

/** Feature bits each ring option asks for. */
const OPTION_FEATURES: readonly [keyof InitOptions, number][] = [
  ['packed', VIRTIO_F_RING_PACKED],
  ['indirect', VIRTIO_F_INDIRECT_DESC],
  ['eventIdx', VIRTIO_F_EVENT_IDX],
  ['inOrder', VIRTIO_F_IN_ORDER],
  ['notificationData', VIRTIO_F_NOTIFICATION_DATA],
  ['ringReset', VIRTIO_F_RING_RESET],
];

function layoutName(layout: Partial<Layout>): string {
  const parts = [layout.packed === true ? 'packed' : 'split'];
  if (layout.indirect !== undefined) parts.push(`indirect ${layout.indirect ? 'on' : 'off'}`);
  if (layout.eventIdx !== undefined) parts.push(`event idx ${layout.eventIdx ? 'on' : 'off'}`);
  return parts.join(', ');
}

/** Throws {@link CheckSkipped} when a feature the check asked for was not negotiated (not offered here). */
function requireNegotiated(driver: VirtioDriver, asked: InitOptions): void {
  const missing = OPTION_FEATURES.filter(([option, bit]) => asked[option] === true && !hasFeature(driver.features, bit));
  if (missing.length > 0) {
    throw new CheckSkipped(`not offered over this transport: ${featureNames(missing.reduce((mask, [, bit]) => mask | featureBit(bit), 0n))}`);
  }
}

/** Initialises with `asked` and skips unless every ring feature in it was negotiated. */
async function initWith<D extends VirtioDevice>(r: Rig<D>, env: CheckEnv<D>, asked: InitOptions): Promise<void> {
  await env.init(r.driver, asked);
  requireNegotiated(r.driver, asked);
}

/** The driver saw no device misbehaviour and the device does not need a reset. */
export function expectHealthy(driver: VirtioDriver, what: string): void {
  expect(driver.deviceErrors, `${what}: device errors the driver detected`).toEqual([]);
  expect(needsReset(driver), `${what}: DEVICE_NEEDS_RESET`).toBe(false);
}

/** spec 2.7 / 2.8: the device serves requests with this layout and these ring features. */
export function servesRequests<D extends VirtioDevice>(layout: Layout): Check<D> {
  return {
    id: 'serves-requests',
    title: `spec ${layout.packed ? '2.8' : '2.7'}: serves requests (${layoutName(layout)})`,
    run: async (r, env) => {
      await initWith(r, env, layout);
      for (let round = 0; round < env.rounds; round++) await env.exercise(r, `round ${round}`);
    },
  };
}

/** spec 2.2.2: FEATURES_OK does not stick for any unoffered bit; the valid set is accepted afterwards. */
export function refusesUnofferedFeatures<D extends VirtioDevice>(): Check<D> {
  return {
    id: 'unoffered-features',
    title: 'spec 2.2.2: FEATURES_OK does not stick when the driver accepts a feature the device did not offer',
    run: async (r, env) => {
      await env.init(r.driver);
      const offered = r.driver.offeredFeatures;
      // Bits 0-63: every transport carries two feature pages.
      for (let bit = 0; bit < 64; bit++) {
        if (hasFeature(offered, bit)) continue;
        const written = featureBit(VIRTIO_F_VERSION_1) | featureBit(bit);
        const refused = await env.init(r.driver, { exactFeatures: written }).then(
          () => false,
          (error: unknown) => error instanceof DriverError && error.reason === 'features-refused',
        );
        expect(refused, `feature bit ${bit} (not offered) refused at FEATURES_OK`).toBe(true);
        const status = r.driver.status;
        expect(status & DeviceStatus.FEATURES_OK, `feature bit ${bit}: FEATURES_OK`).toBe(0);
        expect(status & DeviceStatus.FAILED, `feature bit ${bit}: the driver set FAILED`).toBe(DeviceStatus.FAILED);
      }
      await env.init(r.driver);
      await env.exercise(r, 'after refused features');
    },
  };
}

/** spec 2.5: configuration accesses outside the space read zeros, write nothing, throw nothing. */
export function boundsConfigAccess<D extends VirtioDevice>(): Check<D> {
  return {
    id: 'config-bounds',
    title: 'spec 2.5: configuration reads outside the configuration space return zeros and writes there change nothing',
    run: async (r, env) => {
      await env.init(r.driver);
      const size = r.device.configSize;
      const before = r.driver.readConfig(0, size);
      const outsideSpace: [number, number][] = [
        [size, 1],
        [size, 2],
        [size, 4],
        [size, 8],
        [size + 4, 4],
      ];
      for (const [offset, len] of outsideSpace) {
        expect([...r.driver.readConfig(offset, len)], `read of ${len} bytes at ${offset}`).toEqual(new Array<number>(len).fill(0));
      }
      if (size >= 2) {
        // A read straddling the end: whatever the transport does with the part inside, the part outside is zeros.
        expect([...r.driver.readConfig(size - 2, 4).subarray(2)], 'straddling read').toEqual([0, 0]);
      }
      for (const [offset, len] of outsideSpace) r.driver.writeConfig(offset, new Uint8Array(len).fill(0xff));
      expect([...r.driver.readConfig(0, size)], 'configuration space after writes outside it').toEqual([...before]);
      await env.exercise(r, 'after out-of-range configuration accesses');
    },
  };
}

/** Malformed chains are completed (used) one by one and the queue keeps serving, without DEVICE_NEEDS_RESET. */
export function completesMalformedChains<D extends VirtioDevice>(packed: boolean, indirect: boolean): Check<D> {
  const asked = { packed, indirect };
  return {
    id: 'malformed-chains',
    title: `spec ${packed ? '2.8.17, 2.8.19' : '2.7.4.2, 2.7.5'}: malformed chains are completed and the queue keeps serving (${layoutName(asked)})`,
    run: async (r, env) => {
      await initWith(r, env, asked);
      const queue = r.driver.queue(env.requestQueue);
      for (const chain of malformedChainsFor(packed, indirect)) {
        const id = chain.build(r.driver, queue);
        queue.kick();
        await usedChain(queue, id);
        expectHealthy(r.driver, chain.name);
      }
      await env.exercise(r, 'after malformed chains');
    },
  };
}

/**
 * spec 2.1.2: a corrupt ring sets DEVICE_NEEDS_RESET with a configuration
 * change notification, and a reset recovers. Split: an available index more
 * than a queue size ahead, which no driver can have made available. Packed: a
 * descriptor list over every slot of the ring with VIRTQ_DESC_F_NEXT on each,
 * which runs round the whole ring without ending (a driver "MUST NOT create a
 * descriptor list longer than the Queue Size", spec 2.8.17).
 */
export function flagsCorruptRing<D extends VirtioDevice>(packed: boolean): Check<D> {
  const corruption = packed ? 'a packed descriptor list that never ends' : 'an available index more than a queue size ahead';
  return {
    id: 'corrupt-ring',
    title: `spec 2.1.2: ${corruption} sets DEVICE_NEEDS_RESET with a configuration change notification; a reset recovers`,
    run: async (r, env) => {
      await initWith(r, env, { packed });
      const queue = r.driver.queue(env.requestQueue);
      const ring = queue.ring;
      const changed = r.driver.configChanged();
      if (ring instanceof SplitRingDriver) {
        ring.setAvailIdx(ring.availIndex + queue.size + 1);
      } else {
        const addr = r.driver.allocate(16);
        ring.addRaw(Array.from({ length: ring.free }, () => ({ addr, len: 16, id: 0, flags: VIRTQ_DESC_F_NEXT })));
      }
      queue.kick();
      await changed;
      expect(r.driver.needsReset, 'the driver saw DEVICE_NEEDS_RESET').toBe(true);
      await env.init(r.driver, { packed });
      await env.exercise(r, 'after the reset');
    },
  };
}

/**
 * spec 2.4: once the device status reads 0 after a reset with requests in
 * flight, nothing the device still had in hand reaches guest memory: not the
 * old rings or buffers, not the rings of a new initialisation, and no
 * interrupt arrives for an idle queue. A device may finish the I/O it had
 * started before its status reads 0.
 */
export function resetsWithRequestsInFlight<D extends VirtioDevice>(packed: boolean, hooks: InFlightHooks<D>): Check<D> {
  return {
    id: 'reset-in-flight',
    title: `spec 2.4: a reset with requests in flight leaves guest memory alone once status reads 0 (${layoutName({ packed })})`,
    run: async (r, env) => {
      await initWith(r, env, { packed });
      await hooks.submit(r.driver, r.device);
      expect(inFlight(r.driver), 'requests left in flight by inFlight.submit').toBeGreaterThan(0);
      const stale = queueRanges([...r.driver.activeQueues.values()]);
      const resetting = r.driver.reset();
      // A device still finishing its I/O keeps its status non-zero until done: it may finish now.
      const settling = r.driver.status === 0 ? undefined : hooks.settle(r.device);
      await resetting;
      // From the moment the status reads 0 the old rings and buffers are the driver's alone. A canary
      // in them shows any later write, even of the bytes they held (zeros from an all-zero disk, say).
      fillCanary(r.memory, stale);
      const staleBefore = snapshot(r.memory, stale);
      await env.init(r.driver, { packed });
      // Queues the driver populated may legitimately be used; the others' rings must stay as written.
      const queues = [...r.driver.activeQueues.values()];
      const idle = queues.filter((q) => q.inFlight === 0);
      const idleRings = idle.flatMap(ringRanges);
      const freshBefore = snapshot(r.memory, idleRings);
      // Old areas the new initialisation reuses are checked as new ones, or not at all if in use.
      const staleKept = outside(staleBefore, [...idleRings, ...queueRanges(queues.filter((q) => q.inFlight > 0))]);
      const interrupts = new Map(idle.map((q) => [q.index, r.driver.interrupts.queue.get(q.index) ?? 0]));
      await (settling ?? hooks.settle(r.device));
      const fresh = changedSince(r.memory, freshBefore);
      expect(fresh, `new rings written by the device before any request: ${fresh.join('; ')}`).toEqual([]);
      const late = changedSince(r.memory, staleKept);
      expect(late, `old rings and buffers written after the reset completed (status read 0): ${late.join('; ')}`).toEqual([]);
      for (const q of idle) {
        expect(r.driver.interrupts.queue.get(q.index) ?? 0, `interrupts for idle queue ${q.index}`).toBe(interrupts.get(q.index));
      }
      await env.exercise(r, 'after the reset');
    },
  };
}

/** spec 3.1.1: reset and initialise again, alternating layouts. */
export function reinitialises<D extends VirtioDevice>(): Check<D> {
  return {
    id: 'reinitialisation',
    title: 'spec 3.1.1: the device is reset and initialised again, alternating layouts',
    run: async (r, env) => {
      for (const packed of [false, true, false, true]) {
        await env.init(r.driver, { packed });
        await env.exercise(r, `re-initialised (${r.driver.packed ? 'packed' : 'split'})`);
      }
    },
  };
}

/** spec 2.6.1: a queue reset alone and enabled again keeps serving. */
export function resetsOneQueue<D extends VirtioDevice>(): Check<D> {
  return {
    id: 'queue-reset',
    title: 'spec 2.6.1: a queue reset on its own and enabled again keeps serving',
    run: async (r, env) => {
      await initWith(r, env, { ringReset: true });
      await env.exercise(r, 'before the queue reset');
      const size = r.driver.queue(env.requestQueue).size;
      await r.driver.resetQueue(env.requestQueue);
      r.driver.enableQueue(env.requestQueue, size);
      await env.exercise(r, 'after the queue reset');
    },
  };
}

/** spec 2.7.9 / 2.8.8: with VIRTIO_F_IN_ORDER the driver sees buffers used in order. */
export function usesInOrder<D extends VirtioDevice>(packed: boolean): Check<D> {
  return {
    id: 'in-order',
    title: `spec ${packed ? '2.8.8' : '2.7.9'}: with VIRTIO_F_IN_ORDER buffers are used in the order they were made available (${layoutName({ packed })})`,
    run: async (r, env) => {
      await initWith(r, env, { packed, inOrder: true });
      for (let round = 0; round < env.rounds; round++) await env.exercise(r, `round ${round}`);
    },
  };
}

/** spec 2.9: requests are served with VIRTIO_F_NOTIFICATION_DATA. */
export function takesNotificationData<D extends VirtioDevice>(): Check<D> {
  return {
    id: 'notification-data',
    title: 'spec 2.9: requests are served with VIRTIO_F_NOTIFICATION_DATA',
    run: async (r, env) => {
      await initWith(r, env, { notificationData: true });
      await env.exercise(r, 'with notification data');
    },
  };
}

/** Every check the suite runs for these options, in order; `inFlight` checks only when hooks are given. */
export function conformanceChecks<D extends VirtioDevice>(options: ConformanceOptions<D>): Check<D>[] {
  const hooks = options.inFlight;
  return [
    ...LAYOUTS.map((layout) => servesRequests<D>(layout)),
    refusesUnofferedFeatures<D>(),
    boundsConfigAccess<D>(),
    ...[false, true].flatMap((packed) => [false, true].map((indirect) => completesMalformedChains<D>(packed, indirect))),
    ...[false, true].map((packed) => flagsCorruptRing<D>(packed)),
    ...(hooks === undefined ? [] : [false, true].map((packed) => resetsWithRequestsInFlight(packed, hooks))),
    reinitialises<D>(),
    resetsOneQueue<D>(),
    ...[false, true].map((packed) => usesInOrder<D>(packed)),
    takesNotificationData<D>(),
  ];
}

/** Resolves the options into the environment the checks run in. */
export function checkEnv<D extends VirtioDevice>(options: ConformanceOptions<D>): CheckEnv<D> {
  const deviceInit: InitOptions = {
    queueSize: options.queueSize ?? 16,
    ...(options.features === undefined ? {} : { features: options.features }),
    ...(options.setup === undefined ? {} : { setup: options.setup }),
    ...(options.populate === undefined ? {} : { populate: options.populate }),
  };
  return {
    options,
    requestQueue: options.requestQueue ?? 0,
    rounds: options.rounds ?? 3,
    init: (driver, ring = {}) => driver.init({ ...deviceInit, ...ring }),
    exercise: async ({ driver, device }, what) => {
      await options.exercise(driver, device);
      expectHealthy(driver, what);
    },
  };
}

/** Runs one check against a fresh device over `transport` (default: the core transport). */
export function runCheck<D extends VirtioDevice>(
  options: ConformanceOptions<D>,
  check: Check<D>,
  transport: TransportFactory = coreTransportFactory,
): Promise<void> {
  const env = checkEnv(options);
  return withRig(options.memorySize ?? 4 << 20, options.createDevice, transport, options.destroyDevice, (r) => check.run(r, env));
}
