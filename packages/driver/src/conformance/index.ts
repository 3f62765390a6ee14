import type { VirtioDevice } from '@virtio-ts/virtqueue';
import { describe, it } from 'vitest';
import { coreTransportFactory, type TransportFactory } from '../transport-factory.js';
import { CheckSkipped, conformanceChecks, runCheck, type Check, type ConformanceOptions } from './checks.js';

export {
  CheckSkipped,
  conformanceChecks,
  runCheck,
  type Check,
  type CheckEnv,
  type CheckId,
  type ConformanceOptions,
  type InFlightHooks,
} from './checks.js';
export type { Rig } from './harness.js';
export { exerciseLoopback, loopbackConformance } from './loopback.js';
export { MALFORMED_CHAINS, malformedChainsFor, type MalformedChain } from './malformed.js';
export { describeResetCompletion } from './reset-completion.js';
export { SlowResetDevice } from './slow-reset-device.js';
export { slowResetGuest, type SlowResetGuest } from './slow-reset-guest.js';

/**
 * Registers the virtio conformance suite for a device (vitest `describe`/`it`):
 * the layout matrix (split and packed × indirect on/off × event idx on/off),
 * refusal of unoffered features, out-of-range configuration accesses,
 * malformed chains, a corrupt ring, reset with requests in flight,
 * re-initialisation, queue reset, in-order use and notification data — over
 * every transport given. A test that needs something the device or transport
 * does not offer is skipped with a `SKIP:` line, never passed.
 */
export function describeVirtioConformance<D extends VirtioDevice>(options: ConformanceOptions<D>): void {
  const transports = options.transports ?? [coreTransportFactory];
  describe(options.name ?? 'virtio conformance', () => {
    for (const transport of transports) {
      describe(`over ${transport.name}`, () => {
        for (const check of conformanceChecks(options)) registerCheck(options, check, transport);
        if (options.inFlight === undefined) {
          const title = 'spec 2.4: a reset with requests in flight leaves guest memory alone once status reads 0';
          console.warn(`SKIP: ${title} over ${transport.name}: pass inFlight hooks to describeVirtioConformance to keep requests in flight`);
          it.skip(title, () => undefined);
        }
      });
    }
  });
}

/**
 * Registers one check as a vitest test over `transport`: skipped loudly when
 * `options.skip` gives a reason or the check finds a feature not offered.
 */
export function registerCheck<D extends VirtioDevice>(options: ConformanceOptions<D>, check: Check<D>, transport: TransportFactory): void {
  const reason = options.skip?.(check, transport);
  if (reason !== undefined) {
    console.warn(`SKIP: ${check.title} over ${transport.name}: ${reason}`);
    it.skip(check.title, () => undefined);
    return;
  }
  it(check.title, async (context) => {
    try {
      await runCheck(options, check, transport);
    } catch (error) {
      if (!(error instanceof CheckSkipped)) throw error;
      console.warn(`SKIP: ${check.title} over ${transport.name}: ${error.message}`);
      context.skip();
    }
  });
}
