import { describe, expect, it } from 'vitest';
import { featureNames, statusNames } from './names.js';

describe('names for messages and traces', () => {
  it('spec 2.1: status bits in the order of the initialisation sequence', () => {
    expect(statusNames(0)).toBe('RESET');
    expect(statusNames(1 | 2 | 4 | 8)).toBe('ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK');
    expect(statusNames(1 | 2 | 128)).toBe('ACKNOWLEDGE|DRIVER|FAILED');
    expect(statusNames(1 | 2 | 8 | 16)).toBe('ACKNOWLEDGE|DRIVER|FEATURES_OK|SUSPEND');
    expect(statusNames(64 | 32)).toBe('DEVICE_NEEDS_RESET|0x20');
  });

  it('spec 6: reserved feature bits by name, device-specific ones by number', () => {
    expect(featureNames(0n)).toBe('(none)');
    expect(featureNames((1n << 32n) | (1n << 34n) | (1n << 5n) | (1n << 100n))).toBe('bit5 VERSION_1 RING_PACKED bit100');
    expect(featureNames((1n << 43n) | (1n << 42n))).toBe('bit42 SUSPEND');
  });
});
