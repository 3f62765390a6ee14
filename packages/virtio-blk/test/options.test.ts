import { describe, expect, it } from 'vitest';
import { MemoryBackend, VirtioBlk, type VirtioBlkOptions } from '../src/index.js';

const backend = new MemoryBackend(4096);

describe('options', () => {
  it.each<[Partial<VirtioBlkOptions>, RegExp]>([
    [{ queues: 0 }, /queues 0/],
    [{ queueSize: 100 }, /queueSize 100 is not a power of two/],
    [{ queueSize: 65536 }, /queueSize 65536/],
    [{ blockSize: 1000 }, /blockSize 1000/],
    [{ blockSize: 8192 }, /blockSize 8192/],
    [{ flush: false }, /configWce needs flush/],
    [{ serial: 'x'.repeat(21) }, /serial/],
    [{ serial: 'caf\u00e9' }, /printable ASCII/],
    [{ geometry: { cylinders: 70000, heads: 1, sectors: 1 } }, /geometry.cylinders/],
    [{ discard: { maxSegments: 0 } }, /discard.maxSegments/],
    [{ ringFeatures: 1n << 60n }, /ringFeatures/],
  ])('%o is refused with a message naming the option', (options, message) => {
    expect(() => new VirtioBlk({ backend, ...options })).toThrow(message);
  });

  it('spec 5.2.5.2: CONFIG_WCE is offered only with FLUSH; neither is fine', () => {
    const disk = new VirtioBlk({ backend, flush: false, configWce: false });
    expect(disk.deviceFeatures & ((1n << 9n) | (1n << 11n))).toBe(0n);
  });
});
