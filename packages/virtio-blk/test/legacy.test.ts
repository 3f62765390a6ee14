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
import { rig } from './guest.js';
import { patterned } from './setup.js';

const ALL = ~0n;
const bit = (n: number): bigint => 1n << BigInt(n);

describe('legacy drivers on a transitional PCI function', () => {
  it('negotiate 32 feature bits and move data', async () => {
    const { guest, backend } = rig({ transport: 'pci-legacy', guest: { legacy: true } });
    expect(guest.features >> 32n).toBe(0n);
    const data = patterned(1024, 8);
    expect((await guest.submit({ type: VIRTIO_BLK_T_OUT, sector: 5, out: data })).status).toBe(VIRTIO_BLK_S_OK);
    const r = await guest.submit({ type: VIRTIO_BLK_T_IN, sector: 5, inLen: 1024 });
    expect(r.data).toEqual(data);
    expect(backend.bytes.slice(5 * 512, 7 * 512)).toEqual(data);
  });

  it('spec 5.2.6.4: VIRTIO_BLK_T_FLUSH_OUT is a flush', async () => {
    const { guest, gate } = rig({ transport: 'pci-legacy', guest: { legacy: true } });
    const c = await guest.submit({ type: VIRTIO_BLK_T_FLUSH_OUT });
    expect(c.status).toBe(VIRTIO_BLK_S_OK);
    expect(gate.log).toEqual(['flush:start@0', 'flush:end@0']);
  });

  it('spec 5.2.5.3: without CONFIG_WCE, DRIVER_OK sets the cache mode from FLUSH', () => {
    const withFlush = rig({ transport: 'pci-legacy', device: { writeback: false }, guest: { legacy: true, accept: ALL & ~bit(VIRTIO_BLK_F_CONFIG_WCE) } });
    expect(withFlush.blk.writeback).toBe(true);
    const without = rig({ transport: 'pci-legacy', guest: { legacy: true, accept: ALL & ~bit(VIRTIO_BLK_F_CONFIG_WCE) & ~bit(VIRTIO_BLK_F_FLUSH) } });
    expect(without.blk.writeback).toBe(false);
  });

  it('spec 5.2.5.3: with CONFIG_WCE, a writeback written before DRIVER_OK is kept', async () => {
    const { guest, blk, gate } = rig({
      transport: 'pci-legacy',
      guest: { legacy: true, beforeDriverOk: (t) => t.writeConfig(BlkConfigOffset.writeback, new Uint8Array([0])) },
    });
    expect(guest.features & bit(VIRTIO_BLK_F_CONFIG_WCE)).not.toBe(0n);
    expect(blk.writeback).toBe(false);
    await guest.submit({ type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 2) });
    expect(gate.log.slice(-2)).toEqual(['flush:start@0', 'flush:end@0']);
  });
});
