import { coreTransportFactory, type CoreTransport } from '@virtio-ts/driver';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_IN_ORDER, VIRTIO_F_VERSION_1, DEVICE_SPECIFIC_FEATURES, featureBit, hasFeature } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import {
  BlkConfigOffset,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  BLK_RING_FEATURES,
} from '../src/index.js';
import { settle } from './gated-backend.js';
import { NAMED_TRANSPORTS, TRANSPORTS_AND_LAYOUTS, add, patterned, queueInterrupts, rig, submit } from './setup.js';

/** Every device feature but `bits`. */
const without = (...bits: number[]): bigint => bits.reduce((features, bit) => features & ~featureBit(bit), DEVICE_SPECIFIC_FEATURES);

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Completions reach the driver through each transport's interrupts (MMIO line, PCI MSI-X, CCW adapter indicators).
describe.each(TRANSPORTS_AND_LAYOUTS)('concurrency over %s (packed=%s)', (_name, packed, transport) => {
  it('many requests in flight complete out of order, each with its own data', async () => {
    const { driver, gate, backend } = await rig({ transport, init: { packed } });
    gate.hold = (op) => op.kind === 'read';
    const order: number[] = [];
    const reads = Array.from({ length: 16 }, (_, i) => {
      const p = add(driver, { type: VIRTIO_BLK_T_IN, sector: 2 * i, inLen: 1024 });
      void p.then(() => order.push(i));
      return p;
    });
    driver.queue(0).kick();
    await settle();
    expect(gate.held).toHaveLength(16);
    gate.release([15, 3, 9, 0, 14, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13]);
    const done = await Promise.all(reads);
    expect(order.slice(0, 4)).toEqual([15, 3, 9, 0]);
    done.forEach((c, i) => {
      expect(c.status).toBe(VIRTIO_BLK_S_OK);
      expect(c.data).toEqual(backend.bytes.slice(2 * i * 512, (2 * i + 2) * 512));
    });
  });

  it('with VIRTIO_F_IN_ORDER, requests finishing out of order are still used in order (spec 2.8.23)', async () => {
    const { driver, gate } = await rig({ transport, init: { packed, inOrder: true } });
    expect(hasFeature(driver.features, VIRTIO_F_IN_ORDER)).toBe(true);
    gate.hold = () => true;
    const order: number[] = [];
    const reads = Array.from({ length: 6 }, (_, i) => add(driver, { type: VIRTIO_BLK_T_IN, sector: i, inLen: 512 }).then(() => order.push(i)));
    driver.queue(0).kick();
    await settle();
    gate.release([5, 2, 4, 0, 3, 1]);
    await Promise.all(reads);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  // MSI-X messages, CCW indicators and the status machine deliver every notification; MMIO's level-triggered line merges
  // those raised before the driver serviced it (spec 4.2.3.4), so over MMIO only a batch published over several turns shows.
  it('one interrupt per batch of completions, not one per request', async () => {
    const { driver, gate } = await rig({ transport, init: { packed } });
    gate.hold = () => true;
    const first = Array.from({ length: 8 }, (_, i) => add(driver, { type: VIRTIO_BLK_T_IN, sector: i, inLen: 512 }));
    driver.queue(0).kick();
    await settle();
    const before = queueInterrupts(driver);
    gate.release([0, 1, 2, 3]);
    await Promise.all(first.slice(0, 4));
    expect(queueInterrupts(driver) - before).toBe(1);
    gate.release();
    await Promise.all(first);
    expect(queueInterrupts(driver) - before).toBe(2);
  });

  // Requests GET_ID answers at once: the first one's completion waits for the batch's flush, as a page-cache read does.
  it.each([false, true])('spec 2.7.10, 2.8.10: while a batch waits for its flush, requests added one by one need no notification (eventIdx=%s)', async (eventIdx) => {
    const { driver } = await rig({ transport, init: { packed, eventIdx } });
    const queue = driver.queue(0);
    const before = queue.notifications;
    const batch = Array.from({ length: 8 }, () => submit(driver, { type: VIRTIO_BLK_T_GET_ID, inLen: 20 }));
    expect(queue.notifications - before).toBe(1);
    for (const done of await Promise.all(batch)) expect(done.status).toBe(VIRTIO_BLK_S_OK);
    // The flush turned notifications back on: the next request notifies and is served.
    expect((await submit(driver, { type: VIRTIO_BLK_T_GET_ID, inLen: 20 })).status).toBe(VIRTIO_BLK_S_OK);
    expect(queue.notifications - before).toBe(2);
  });
});

// Each queue has its own notification and interrupt path in each transport (PCI MSI-X vectors, CCW per-queue indicators).
describe.each(NAMED_TRANSPORTS)('multiqueue (VIRTIO_BLK_F_MQ) over %s', (_name, transport) => {
  it('num_queues is in the configuration space and every queue serves requests', async () => {
    const { driver, backend } = await rig({ transport, device: { queues: 4 } });
    expect(hasFeature(driver.features, VIRTIO_BLK_F_MQ)).toBe(true);
    expect(driver.readConfigU16(BlkConfigOffset.numQueues)).toBe(4);
    expect(driver.activeQueues.size).toBe(4);
    const done = await Promise.all([0, 1, 2, 3].map((q) => submit(driver, { type: VIRTIO_BLK_T_IN, sector: q, inLen: 512 }, q)));
    done.forEach((c, q) => expect(c.data).toEqual(backend.bytes.slice(q * 512, (q + 1) * 512)));
  });

  it('queues are independent: a stalled queue does not hold the others back', async () => {
    const { driver, gate } = await rig({ transport, device: { queues: 3 } });
    gate.hold = (op) => op.offset === 0;
    const stalled = submit(driver, { type: VIRTIO_BLK_T_IN, sector: 0, inLen: 512 }, 0);
    let stalledDone = false;
    void stalled.then(() => (stalledDone = true));
    const others = await Promise.all([1, 2].map((q) => submit(driver, { type: VIRTIO_BLK_T_IN, sector: 8, inLen: 512 }, q)));
    expect(others.map((c) => c.status)).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
    expect(stalledDone).toBe(false);
    gate.release();
    expect((await stalled).status).toBe(VIRTIO_BLK_S_OK);
  });

  it('spec 5.2.2: without MQ negotiated the driver sets up one queue, and the disk serves on it', async () => {
    const { driver, backend } = await rig({ transport, device: { queues: 4 }, init: { features: without(VIRTIO_BLK_F_MQ), queues: [0] } });
    expect(hasFeature(driver.features, VIRTIO_BLK_F_MQ)).toBe(false);
    expect(driver.activeQueues.size).toBe(1);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 5, inLen: 512 })).data).toEqual(backend.bytes.slice(5 * 512, 6 * 512));
  });
});

describe('write-back cache (spec 5.2.6.2)', () => {
  /** Index of the first log entry matching `entry` after position `from`. */
  const at = (log: readonly string[], entry: string, from = 0): number => log.indexOf(entry, from);

  it('write-back: a write completes without a flush; FLUSH completes after a backend flush that began after the write completed', async () => {
    const { driver, gate, blk } = await rig();
    expect(blk.writeback).toBe(true);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 3) });
    expect(gate.log).toEqual(['write:start@512', 'write:end@512']);
    const f = await submit(driver, { type: VIRTIO_BLK_T_FLUSH });
    expect(f.status).toBe(VIRTIO_BLK_S_OK);
    expect(gate.log.slice(2)).toEqual(['flush:start@0', 'flush:end@0']);
  });

  it('a FLUSH waits for a flush that starts after it, even when one is already running', async () => {
    const { driver, gate } = await rig();
    gate.hold = (op) => op.kind === 'flush';
    const f1 = submit(driver, { type: VIRTIO_BLK_T_FLUSH });
    await settle();
    expect(gate.held).toHaveLength(1);
    const w = submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 2, out: patterned(512, 4) });
    await w;
    const f2 = submit(driver, { type: VIRTIO_BLK_T_FLUSH });
    const f3 = submit(driver, { type: VIRTIO_BLK_T_FLUSH });
    await settle();
    let f2Done = false;
    void f2.then(() => (f2Done = true));
    gate.release();
    await f1;
    await settle();
    // f2 and f3 share the second backend flush, which started after the write completed.
    expect(f2Done).toBe(false);
    expect(gate.held).toHaveLength(1);
    gate.release();
    await Promise.all([f2, f3]);
    const log = gate.log;
    expect(at(log, 'flush:start@0', at(log, 'write:end@1024'))).toBeGreaterThan(at(log, 'write:end@1024'));
    expect(log.filter((e) => e === 'flush:start@0')).toHaveLength(2);
  });

  it('spec 5.2.6.2 case 1: FLUSH offered but neither FLUSH nor CONFIG_WCE negotiated means write-through', async () => {
    const { driver, gate } = await rig({ init: { features: without(VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE) } });
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 3) });
    expect(gate.log).toEqual(['write:start@512', 'write:end@512', 'flush:start@0', 'flush:end@0']);
  });

  it('spec 5.2.5.2: CONFIG_WCE without FLUSH starts write-through', async () => {
    const { driver, gate } = await rig({ init: { features: without(VIRTIO_BLK_F_FLUSH) } });
    expect(driver.readConfigU8(BlkConfigOffset.writeback)).toBe(0);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 3) });
    expect(gate.log.slice(-2)).toEqual(['flush:start@0', 'flush:end@0']);
  });

  it('FLUSH without CONFIG_WCE is a write-back cache; writeback cannot be changed; no flush is done for plain writes', async () => {
    const { driver, gate, blk } = await rig({ init: { features: without(VIRTIO_BLK_F_CONFIG_WCE) } });
    driver.writeConfigU8(BlkConfigOffset.writeback, 0);
    expect(blk.writeback).toBe(true);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 3) });
    expect(gate.log).toEqual(['write:start@512', 'write:end@512']);
  });

  it('the cache mode goes back to its initial value on reset; values other than 0 and 1 are ignored', async () => {
    const { driver, blk } = await rig({ device: { writeback: false } });
    expect(blk.writeback).toBe(false);
    driver.writeConfigU8(BlkConfigOffset.writeback, 2);
    expect(blk.writeback).toBe(false);
    driver.writeConfigU8(BlkConfigOffset.writeback, 1);
    expect(blk.writeback).toBe(true);
    await driver.reset();
    expect(blk.writeback).toBe(false);
  });
});

// Configuration accesses and change notifications take a different path in each transport.
describe.each(NAMED_TRANSPORTS)('configuration space (spec 5.2.4) over %s', (_name, transport) => {
  it('reflects the options; fields of features not offered and padding read 0', async () => {
    const { driver, blk } = await rig({
      transport,
      sectors: 100,
      device: {
        blockSize: 4096,
        sizeMax: 65536,
        segMax: 30,
        geometry: { cylinders: 1000, heads: 16, sectors: 63 },
        topology: { physicalBlockExp: 3, alignmentOffset: 1, minIoSize: 8, optIoSize: 256 },
        discard: { maxSectors: 1024, maxSegments: 8, sectorAlignment: 16 },
        writeZeroes: false,
        secureErase: { maxSectors: 2048, maxSegments: 2 },
      },
    });
    const c = view(driver.readConfig(0, blk.configSize));
    const o = BlkConfigOffset;
    expect(c.getBigUint64(o.capacity, true)).toBe(100n);
    expect(driver.readConfigU64(o.capacity)).toBe(100n);
    expect(c.getUint32(o.sizeMax, true)).toBe(65536);
    expect(c.getUint32(o.segMax, true)).toBe(30);
    expect([c.getUint16(o.cylinders, true), c.getUint8(o.heads), c.getUint8(o.sectors)]).toEqual([1000, 16, 63]);
    expect(c.getUint32(o.blkSize, true)).toBe(4096);
    expect([c.getUint8(o.physicalBlockExp), c.getUint8(o.alignmentOffset), c.getUint16(o.minIoSize, true), c.getUint32(o.optIoSize, true)]).toEqual([3, 1, 8, 256]);
    expect(c.getUint8(o.writeback)).toBe(1);
    expect(c.getUint8(o.writeback + 1)).toBe(0);
    expect(c.getUint16(o.numQueues, true)).toBe(1);
    expect([c.getUint32(o.maxDiscardSectors, true), c.getUint32(o.maxDiscardSeg, true), c.getUint32(o.discardSectorAlignment, true)]).toEqual([1024, 8, 16]);
    expect([c.getUint32(o.maxWriteZeroesSectors, true), c.getUint32(o.maxWriteZeroesSeg, true), c.getUint8(o.writeZeroesMayUnmap)]).toEqual([0, 0, 0]);
    expect([1, 2, 3].map((i) => c.getUint8(o.writeZeroesMayUnmap + i))).toEqual([0, 0, 0]);
    expect([c.getUint32(o.maxSecureEraseSectors, true), c.getUint32(o.maxSecureEraseSeg, true), c.getUint32(o.secureEraseSectorAlignment, true)]).toEqual([2048, 2, 8]);
  });

  it('writes to anything but writeback are ignored', async () => {
    const { driver, blk } = await rig({ transport });
    const before = driver.readConfig(0, blk.configSize);
    driver.writeConfig(0, new Uint8Array(blk.configSize).fill(0x5a));
    const after = driver.readConfig(0, blk.configSize);
    for (let i = 0; i < blk.configSize; i++) if (i !== BlkConfigOffset.writeback) expect(after[i], `byte ${i}`).toBe(before[i]);
  });

  it('write-through (writeback set to 0 by the driver): each write is flushed before it completes', async () => {
    const { driver, gate, blk } = await rig({ transport });
    driver.writeConfigU8(BlkConfigOffset.writeback, 0);
    expect(blk.writeback).toBe(false);
    expect(driver.readConfigU8(BlkConfigOffset.writeback)).toBe(0);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 3) });
    expect(gate.log).toEqual(['write:start@512', 'write:end@512', 'flush:start@0', 'flush:end@0']);
    driver.writeConfigU8(BlkConfigOffset.writeback, 1);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 3) });
    expect(gate.log).toHaveLength(6);
  });

  it('spec 5.2.6.3: resize(bytes) grows or shrinks the image; capacity and the configuration change interrupt follow; an unchanged size is silent', async () => {
    const { driver, blk, backend } = await rig({ transport, sectors: 16 });
    const generation = driver.transport.configGeneration();
    await blk.resize(32 * 512);
    await settle();
    expect(backend.size).toBe(32 * 512);
    expect(driver.readConfigU64(BlkConfigOffset.capacity)).toBe(32n);
    expect(driver.interrupts.config).toBe(1);
    expect(driver.transport.configGeneration()).not.toBe(generation);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 31, inLen: 512 })).status).toBe(VIRTIO_BLK_S_OK);
    await blk.resize(32 * 512 + 100);
    await settle();
    expect(driver.interrupts.config).toBe(1);
    await blk.resize(8 * 512);
    await settle();
    expect(blk.capacity).toBe(8);
    expect(driver.interrupts.config).toBe(2);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 8, inLen: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
  });
});

describe('snapshot and restore', () => {
  it('the cache mode and negotiated features survive a restore; requests go on on the same rings', async () => {
    const { driver, blk, gate } = await rig({ transport: coreTransportFactory });
    driver.writeConfigU8(BlkConfigOffset.writeback, 0);
    await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 1, out: patterned(512, 1) });
    const core = (driver.transport as CoreTransport).core;
    const saved = JSON.parse(JSON.stringify(core.snapshot())) as ReturnType<typeof core.snapshot>;
    core.restore(saved);
    expect(blk.writeback).toBe(false);
    const before = gate.log.length;
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 2, out: patterned(512, 2) })).status).toBe(VIRTIO_BLK_S_OK);
    expect(gate.log.slice(before)).toEqual(['write:start@1024', 'write:end@1024', 'flush:start@0', 'flush:end@0']);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 2, inLen: 512 })).data).toEqual(patterned(512, 2));
  });

  it('a malformed state is refused', async () => {
    const { blk } = await rig();
    for (const bad of [null, 1, {}, { writeback: 1, features: null }, { writeback: true, features: 'xyz' }, { writeback: true, features: 5 }]) {
      expect(() => blk.restore(bad)).toThrow(/malformed snapshot/);
    }
  });
});

describe('offered features', () => {
  it('ring features are configurable per disk', async () => {
    const { blk } = await rig({ device: { ringFeatures: featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_EVENT_IDX) } });
    expect(blk.deviceFeatures & BLK_RING_FEATURES).toBe(featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_EVENT_IDX));
    expect((await rig()).blk.deviceFeatures & BLK_RING_FEATURES).toBe(BLK_RING_FEATURES);
    await expect(rig({ device: { ringFeatures: featureBit(VIRTIO_F_EVENT_IDX) } })).rejects.toThrow(/VERSION_1/);
  });
});
