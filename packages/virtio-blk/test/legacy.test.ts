import { DEVICE_SPECIFIC_FEATURES, featureBit, hasFeature } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import {
  BlkConfigOffset,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_FLUSH_OUT,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../src/index.js';
import { PCI_LEGACY, patterned, rig, submit, type RigOptions } from './setup.js';

/** A legacy driver (spec 3.1.2: no FEATURES_OK, legacy ring layout) on a transitional PCI function. */
function legacyRig(options: RigOptions = {}): ReturnType<typeof rig> {
  return rig({ ...options, transport: PCI_LEGACY, init: { ...options.init, legacy: true } });
}

describe('legacy drivers on a transitional PCI function', () => {
  it('negotiate 32 feature bits and move data', async () => {
    const { driver, backend } = await legacyRig();
    expect(driver.features >> 32n).toBe(0n);
    const data = patterned(1024, 8);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 5, out: data })).status).toBe(VIRTIO_BLK_S_OK);
    const r = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 5, inLen: 1024 });
    expect(r.data).toEqual(data);
    expect(backend.bytes.slice(5 * 512, 7 * 512)).toEqual(data);
  });

  it('spec 5.2.6.4: VIRTIO_BLK_T_FLUSH_OUT is a flush', async () => {
    const { driver, gate } = await legacyRig();
    const c = await submit(driver, { type: VIRTIO_BLK_T_FLUSH_OUT });
    expect(c.status).toBe(VIRTIO_BLK_S_OK);
    expect(gate.log).toEqual(['flush:start@0', 'flush:end@0']);
  });

  it('spec 5.2.5.3: without CONFIG_WCE, DRIVER_OK sets the cache mode from FLUSH', async () => {
    const noWce = DEVICE_SPECIFIC_FEATURES & ~featureBit(VIRTIO_BLK_F_CONFIG_WCE);
    const withFlush = await legacyRig({ device: { writeback: false }, init: { features: noWce } });
    expect(withFlush.blk.writeback).toBe(true);
    const without = await legacyRig({ init: { features: noWce & ~featureBit(VIRTIO_BLK_F_FLUSH) } });
    expect(without.blk.writeback).toBe(false);
  });

  it('spec 5.2.5.3: with CONFIG_WCE, a writeback written before DRIVER_OK is kept', async () => {
    const { driver, blk, gate } = await legacyRig({ init: { setup: (d) => d.writeConfigU8(BlkConfigOffset.writeback, 0) } });
    expect(hasFeature(driver.features, VIRTIO_BLK_F_CONFIG_WCE)).toBe(true);
    expect(blk.writeback).toBe(false);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 2) });
    expect(gate.log.slice(-2)).toEqual(['flush:start@0', 'flush:end@0']);
  });
});
