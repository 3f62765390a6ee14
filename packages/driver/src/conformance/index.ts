import {
  DeviceStatus,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_RING_RESET,
  VIRTIO_F_VERSION_1,
  featureBit,
  hasFeature,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import type { SplitRingDriver } from '@virtio-ts/virtqueue/testing';
import { describe, expect, it, type TestContext } from 'vitest';
import type { InitOptions, VirtioDriver } from '../driver.js';
import { featureNames } from '../names.js';
import { coreTransportFactory, type TransportFactory } from '../transport-factory.js';
import { changedSince, inFlight, needsReset, outside, queueRanges, ringRanges, snapshot, usedChain, withRig, type DeviceInit, type Rig } from './harness.js';
import { malformedChainsFor } from './malformed.js';

export { MALFORMED_CHAINS, malformedChainsFor, type MalformedChain } from './malformed.js';

/**
 * How the suite keeps requests in flight across a reset. `submit` makes
 * requests available that the device will not complete before `settle`
 * (use `DriverQueue.add` and `kick`, not `request`, whose promise the reset
 * rejects). `settle` lets the device finish everything it started, resolving
 * once it has: after a reset none of it may reach guest memory.
 */
export interface InFlightHooks<D extends VirtioDevice> {
  /** Leaves at least one request in flight. */
  readonly submit: (driver: VirtioDriver, device: D) => void | Promise<void>;
  /** Lets the device complete (or drop) what it was holding. */
  readonly settle: (device: D) => void | Promise<void>;
}

/** What {@link describeVirtioConformance} needs to know about a device. */
export interface ConformanceOptions<D extends VirtioDevice> {
  /** Title of the suite. Defaults to `virtio conformance: device type <N>`. */
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

function layoutName(layout: Partial<Layout>): string {
  const parts = [layout.packed === true ? 'packed' : 'split'];
  if (layout.indirect !== undefined) parts.push(`indirect ${layout.indirect ? 'on' : 'off'}`);
  if (layout.eventIdx !== undefined) parts.push(`event idx ${layout.eventIdx ? 'on' : 'off'}`);
  return parts.join(', ');
}

/** Feature bits each ring option asks for. */
const OPTION_FEATURES: readonly [keyof InitOptions, number][] = [
  ['packed', VIRTIO_F_RING_PACKED],
  ['indirect', VIRTIO_F_INDIRECT_DESC],
  ['eventIdx', VIRTIO_F_EVENT_IDX],
  ['inOrder', VIRTIO_F_IN_ORDER],
  ['notificationData', VIRTIO_F_NOTIFICATION_DATA],
  ['ringReset', VIRTIO_F_RING_RESET],
];

/**
 * Skips the test, loudly, when a feature the test asked for was not negotiated
 * (the device or the transport does not offer it): a skipped test never passes.
 */
function requireNegotiated(context: TestContext, driver: VirtioDriver, asked: InitOptions): void {
  const missing = OPTION_FEATURES.filter(([option, bit]) => asked[option] === true && !hasFeature(driver.features, bit));
  if (missing.length === 0) return;
  const names = featureNames(missing.reduce((mask, [, bit]) => mask | featureBit(bit), 0n));
  console.warn(`SKIP: ${context.task.name}: not offered over this transport: ${names}`);
  context.skip();
}

/** The driver saw no device misbehaviour and the device does not need a reset. */
function expectHealthy(driver: VirtioDriver, what: string): void {
  expect(driver.deviceErrors, `${what}: device errors the driver detected`).toEqual([]);
  expect(needsReset(driver), `${what}: DEVICE_NEEDS_RESET`).toBe(false);
}

/**
 * Registers the virtio conformance suite for a device (vitest `describe`/`it`):
 * the layout matrix (split and packed × indirect on/off × event idx on/off),
 * refusal of unoffered features, out-of-range configuration accesses,
 * malformed chains, a corrupt ring, reset with requests in flight,
 * re-initialisation, queue reset, in-order use and notification data — over
 * every transport given. Tests that need a feature the device or transport
 * does not offer are skipped with a `SKIP:` line.
 */
export function describeVirtioConformance<D extends VirtioDevice>(options: ConformanceOptions<D>): void {
  const transports = options.transports ?? [coreTransportFactory];
  const requestQueue = options.requestQueue ?? 0;
  const rounds = options.rounds ?? 3;
  const memorySize = options.memorySize ?? 4 << 20;
  const deviceInit: DeviceInit = {
    queueSize: options.queueSize ?? 16,
    ...(options.features === undefined ? {} : { features: options.features }),
    ...(options.setup === undefined ? {} : { setup: options.setup }),
    ...(options.populate === undefined ? {} : { populate: options.populate }),
  };
  const init = (driver: VirtioDriver, ring: InitOptions = {}): Promise<bigint> => driver.init({ ...deviceInit, ...ring });
  const exercise = async ({ driver, device }: Rig<D>, what: string): Promise<void> => {
    await options.exercise(driver, device);
    expectHealthy(driver, what);
  };

  describe(options.name ?? 'virtio conformance', () => {
    for (const transport of transports) {
      const rig = (body: (rig: Rig<D>) => Promise<void>): Promise<void> =>
        withRig(memorySize, options.createDevice, transport, options.destroyDevice, body);

      describe(`over ${transport.name}`, () => {
        for (const layout of LAYOUTS) {
          it(`spec ${layout.packed ? '2.8' : '2.7'}: serves requests (${layoutName(layout)})`, (context) =>
            rig(async (r) => {
              await init(r.driver, layout);
              requireNegotiated(context, r.driver, layout);
              expect(r.driver.packed).toBe(layout.packed);
              for (let round = 0; round < rounds; round++) await exercise(r, `round ${round}`);
            }),
          );
        }

        it('spec 2.2.2: FEATURES_OK does not stick when the driver accepts a feature the device did not offer', () =>
          rig(async (r) => {
            await init(r.driver);
            const offered = r.driver.offeredFeatures;
            // Bits 0-63: every transport carries two feature pages.
            for (let bit = 0; bit < 64; bit++) {
              if (hasFeature(offered, bit)) continue;
              const written = featureBit(VIRTIO_F_VERSION_1) | featureBit(bit);
              await expect(r.driver.init({ ...deviceInit, exactFeatures: written }), `feature bit ${bit}`).rejects.toMatchObject({
                reason: 'features-refused',
              });
              const status = r.driver.status;
              expect(status & DeviceStatus.FEATURES_OK, `feature bit ${bit}: FEATURES_OK`).toBe(0);
              expect(status & DeviceStatus.FAILED, `feature bit ${bit}: the driver set FAILED`).toBe(DeviceStatus.FAILED);
            }
            // spec 2.2.2: the device accepts the same valid set again after the refusals.
            await init(r.driver);
            await exercise(r, 'after refused features');
          }),
        );

        it('spec 2.5: configuration reads outside the configuration space return zeros and writes there change nothing', () =>
          rig(async (r) => {
            await init(r.driver);
            const size = r.device.configSize;
            const before = r.driver.readConfig(0, size);
            const outside: [number, number][] = [
              [size, 1],
              [size, 2],
              [size, 4],
              [size, 8],
              [size + 0x40, 4],
              [0xff0, 4],
              [0xfff0, 4],
            ];
            for (const [offset, len] of outside) {
              expect([...r.driver.readConfig(offset, len)], `read of ${len} bytes at ${offset}`).toEqual(new Array<number>(len).fill(0));
            }
            if (size >= 2) {
              // A read straddling the end: whatever the transport does with the part inside, the part outside is zeros.
              expect([...r.driver.readConfig(size - 2, 4).subarray(2)], 'straddling read').toEqual([0, 0]);
            }
            for (const [offset, len] of outside) r.driver.writeConfig(offset, new Uint8Array(len).fill(0xff));
            expect([...r.driver.readConfig(0, size)], 'configuration space after writes outside it').toEqual([...before]);
            await exercise(r, 'after out-of-range configuration accesses');
          }),
        );

        for (const packed of [false, true]) {
          for (const indirect of [false, true]) {
            const asked = { packed, indirect };
            it(`spec ${packed ? '2.8.17, 2.8.19' : '2.7.4.2, 2.7.5'}: malformed chains are completed and the queue keeps serving (${layoutName(asked)})`, (context) =>
              rig(async (r) => {
                await init(r.driver, asked);
                requireNegotiated(context, r.driver, asked);
                const queue = r.driver.queue(requestQueue);
                for (const chain of malformedChainsFor(packed, indirect)) {
                  const id = chain.build(r.driver, queue);
                  queue.kick();
                  await usedChain(queue, id);
                  expectHealthy(r.driver, chain.name);
                }
                await exercise(r, 'after malformed chains');
              }),
            );
          }
        }

        it('spec 2.1.2: a corrupt available ring sets DEVICE_NEEDS_RESET with a configuration change notification; a reset recovers', () =>
          rig(async (r) => {
            await init(r.driver, { packed: false });
            const queue = r.driver.queue(requestQueue);
            const ring = queue.ring as SplitRingDriver;
            const changed = r.driver.configChanged();
            // An available index more than a queue size ahead: no driver can have made that many buffers available.
            ring.setAvailIdx(ring.availIndex + queue.size + 1);
            queue.kick();
            await changed;
            expect(r.driver.needsReset).toBe(true);
            expect(needsReset(r.driver)).toBe(true);
            await init(r.driver, { packed: false });
            await exercise(r, 'after the reset');
          }),
        );

        for (const packed of [false, true]) {
          const title = `spec 2.4: a reset with requests in flight leaves guest memory alone afterwards (${layoutName({ packed })})`;
          const hooks = options.inFlight;
          if (hooks === undefined) {
            it.skip(title, () => undefined);
            console.warn(`SKIP: ${title}: pass inFlight hooks to describeVirtioConformance to keep requests in flight`);
            continue;
          }
          it(title, (context) =>
            rig(async (r) => {
              await init(r.driver, { packed });
              requireNegotiated(context, r.driver, { packed });
              await hooks.submit(r.driver, r.device);
              expect(inFlight(r.driver), 'requests left in flight by inFlight.submit').toBeGreaterThan(0);
              const stale = queueRanges([...r.driver.activeQueues.values()]);
              r.driver.reset();
              const staleBefore = snapshot(r.memory, stale);
              await init(r.driver, { packed });
              // Queues the driver populated may legitimately be used; the others' rings must stay as written.
              const queues = [...r.driver.activeQueues.values()];
              const idle = queues.filter((q) => q.inFlight === 0);
              const idleRings = idle.flatMap(ringRanges);
              const freshBefore = snapshot(r.memory, idleRings);
              // Old areas the new initialisation reused are checked as new ones (or not at all, if in use).
              const staleKept = outside(staleBefore, [...idleRings, ...queueRanges(queues.filter((q) => q.inFlight > 0))]);
              const interrupts = new Map(idle.map((q) => [q.index, r.driver.interrupts.queue.get(q.index) ?? 0]));
              await hooks.settle(r.device);
              expect(changedSince(r.memory, freshBefore), 'new rings written by the device before any request').toEqual([]);
              expect(changedSince(r.memory, staleKept), 'old rings and buffers written after the reset').toEqual([]);
              for (const q of idle) expect(r.driver.interrupts.queue.get(q.index) ?? 0, `interrupts for idle queue ${q.index}`).toBe(interrupts.get(q.index));
              await exercise(r, 'after the reset');
            }),
          );
        }

        it('spec 3.1.1: the device is reset and initialised again, alternating layouts', () =>
          rig(async (r) => {
            for (const packed of [false, true, false, true]) {
              await init(r.driver, { packed });
              await exercise(r, `re-initialised (${r.driver.packed ? 'packed' : 'split'})`);
            }
          }),
        );

        it('spec 2.6.1: a queue reset on its own and enabled again keeps serving', (context) =>
          rig(async (r) => {
            const asked = { ringReset: true };
            await init(r.driver, asked);
            requireNegotiated(context, r.driver, asked);
            await exercise(r, 'before the queue reset');
            const size = r.driver.queue(requestQueue).size;
            r.driver.resetQueue(requestQueue);
            r.driver.enableQueue(requestQueue, size);
            await exercise(r, 'after the queue reset');
          }),
        );

        for (const packed of [false, true]) {
          const asked = { packed, inOrder: true };
          it(`spec ${packed ? '2.8.8' : '2.7.9'}: with VIRTIO_F_IN_ORDER buffers are used in the order they were made available (${layoutName({ packed })})`, (context) =>
            rig(async (r) => {
              await init(r.driver, asked);
              requireNegotiated(context, r.driver, asked);
              for (let round = 0; round < rounds; round++) await exercise(r, `round ${round}`);
            }),
          );
        }

        it('spec 2.9: requests are served with VIRTIO_F_NOTIFICATION_DATA', (context) =>
          rig(async (r) => {
            const asked = { notificationData: true };
            await init(r.driver, asked);
            requireNegotiated(context, r.driver, asked);
            await exercise(r, 'with notification data');
          }),
        );
      });
    }
  });
}
