import { DeviceStatus } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import {
  MemoryBackend,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_FLUSH_OUT,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from '../src/index.js';
import { CANARY, header, patterned, rig, segments, submit, submitBuffers } from './setup.js';

// Request handling does not depend on the transport (behaviour.test.ts and conformance.test.ts cover each one): the status machine, both ring layouts.
describe.each([false, true])('requests (packed=%s)', (packed) => {
  it('spec 5.2.6: IN reads whole sectors; the used length is the data plus the status byte', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const c = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 3, inLen: 1024 });
    expect(c.status).toBe(VIRTIO_BLK_S_OK);
    expect(c.len).toBe(1025);
    expect(c.data).toEqual(backend.bytes.slice(3 * 512, 5 * 512));
  });

  it('spec 5.2.6: OUT writes whole sectors and reads back', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const data = patterned(2048, 99);
    const w = await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 10, out: data });
    expect(w.status).toBe(VIRTIO_BLK_S_OK);
    expect(w.len).toBe(1);
    expect(backend.bytes.slice(10 * 512, 14 * 512)).toEqual(data);
    const r = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 10, inLen: 2048 });
    expect(r.data).toEqual(data);
  });

  it('spec 2.7.4: no framing is assumed — header, data and status split anywhere, or all in one descriptor each way', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const data = patterned(1536, 5);
    const w = await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 7, out: data, readableCuts: [1, 5, 9, 15, 17, 600, 1100] });
    expect(w.status).toBe(VIRTIO_BLK_S_OK);
    expect(backend.bytes.slice(7 * 512, 10 * 512)).toEqual(data);
    // header, data and status each in one piece; then data and status sharing one descriptor
    const a = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 7, inLen: 1536 });
    const b = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 7, inLen: 1536, readableCuts: [3, 11], writableCuts: [1, 512, 1535] });
    const c = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 7, inLen: 1536, indirect: true, writableCuts: [100, 1000] });
    for (const r of [a, b, c]) {
      expect(r.status).toBe(VIRTIO_BLK_S_OK);
      expect(r.len).toBe(1537);
      expect(r.data).toEqual(data);
    }
  });

  it('spec 5.2.6.1: data that is not a multiple of 512 bytes fails with IOERR and writes nothing', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const before = backend.bytes.slice();
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 0, out: new Uint8Array(513) })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 0, inLen: 100 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(backend.bytes).toEqual(before);
  });

  it('spec 5.2.6.1: reads and writes past the capacity fail with IOERR', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const before = backend.bytes.slice();
    const cases = [
      { type: VIRTIO_BLK_T_IN, sector: 63, inLen: 1024 },
      { type: VIRTIO_BLK_T_IN, sector: 64, inLen: 512 },
      { type: VIRTIO_BLK_T_IN, sector: 0xffffffffffffffffn, inLen: 512 },
      { type: VIRTIO_BLK_T_IN, sector: 1n << 45n, inLen: 512 },
      { type: VIRTIO_BLK_T_OUT, sector: 63, out: new Uint8Array(1024) },
      { type: VIRTIO_BLK_T_OUT, sector: 0xfffffffffffffff0n, out: new Uint8Array(512) },
    ];
    for (const request of cases) expect((await submit(driver, request)).status, JSON.stringify(request, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).toBe(VIRTIO_BLK_S_IOERR);
    expect(backend.bytes).toEqual(before);
    // The last sector itself is fine.
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 63, inLen: 512 })).status).toBe(VIRTIO_BLK_S_OK);
  });

  it('spec 5.2.6: a header shorter than 16 bytes fails with IOERR', async () => {
    const { driver } = await rig({ init: { packed } });
    const c = await submit(driver, { type: VIRTIO_BLK_T_IN, header: header(VIRTIO_BLK_T_IN, 0).subarray(0, 12), inLen: 512 });
    expect(c.status).toBe(VIRTIO_BLK_S_IOERR);
    // spec 2.7.8, 5.2.6.4: only the status byte was written, so the used length says 1, not the 513 writable bytes.
    expect(c.len).toBe(1);
    expect(c.data).toEqual(new Uint8Array(512).fill(CANARY));
  });

  it('spec 5.2.6: data on the wrong side fails with IOERR (readable data on IN, writable data on OUT)', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const before = backend.bytes.slice();
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 0, out: new Uint8Array(512), inLen: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 0, out: new Uint8Array(512), inLen: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(backend.bytes).toEqual(before);
  });

  it('a request with no writable byte has nowhere for a status: it is used with length 0', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const before = backend.bytes.slice();
    const c = await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 0, out: new Uint8Array(512).fill(1), statusLen: 0 });
    expect(c).toEqual({ status: undefined, len: 0, data: new Uint8Array(0) });
    expect(backend.bytes).toEqual(before);
  });

  it('spec 5.2.6: the status goes in the last writable byte, however large the status buffer; the used length counts the status byte only', async () => {
    const { driver } = await rig({ init: { packed } });
    const c = await submit(driver, { type: VIRTIO_BLK_T_FLUSH, statusLen: 8 });
    expect(c.status).toBe(VIRTIO_BLK_S_OK);
    expect(c.len).toBe(1);
  });

  it('spec 5.2.6: unknown and zoned request types are UNSUPP', async () => {
    const { driver } = await rig({ init: { packed } });
    for (const type of [2, 3, 6, 9, 12, 15, 16, 18, 20, 22, 24, 26, 0x80000000, 0xffffffff]) {
      const c = await submit(driver, { type, inLen: 512 });
      expect(c.status, `type ${type}`).toBe(VIRTIO_BLK_S_UNSUPP);
      expect(c.len).toBe(1);
    }
  });

  it('spec 5.2.6.4: VIRTIO_BLK_T_FLUSH_OUT is a flush only for legacy drivers', async () => {
    const { driver } = await rig({ init: { packed } });
    expect((await submit(driver, { type: VIRTIO_BLK_T_FLUSH_OUT })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  });

  it('spec 5.2.6: GET_ID writes the 20-byte NUL-padded serial', async () => {
    const { driver } = await rig({ device: { serial: 'virtio-ts-disk-0001' }, init: { packed } });
    const c = await submit(driver, { type: VIRTIO_BLK_T_GET_ID, inLen: 20 });
    expect(c.status).toBe(VIRTIO_BLK_S_OK);
    expect(c.len).toBe(21);
    expect(new TextDecoder().decode(c.data)).toBe('virtio-ts-disk-0001\0');
    const full = await rig({ device: { serial: 'ABCDEFGHIJKLMNOPQRST' }, init: { packed } });
    expect(new TextDecoder().decode((await submit(full.driver, { type: VIRTIO_BLK_T_GET_ID, inLen: 20, writableCuts: [7] })).data)).toBe('ABCDEFGHIJKLMNOPQRST');
    // spec 5.2.6.1: exactly 20 bytes.
    for (const inLen of [19, 21, 4096]) {
      const wrong = await submit(driver, { type: VIRTIO_BLK_T_GET_ID, inLen });
      expect(wrong.status).toBe(VIRTIO_BLK_S_IOERR);
      expect(wrong.data.every((b) => b === CANARY)).toBe(true);
    }
  });

  it('spec 5.2.6: FLUSH completes OK', async () => {
    const { driver } = await rig({ init: { packed } });
    const c = await submit(driver, { type: VIRTIO_BLK_T_FLUSH });
    expect(c).toEqual({ status: VIRTIO_BLK_S_OK, len: 1, data: new Uint8Array(0) });
  });

  it('a malformed chain (a buffer outside guest memory) is used with length 0 and the queue keeps serving', async () => {
    const { driver, backend } = await rig({ init: { packed } });
    const outside = driver.memory.size + 4096;
    const bad = submitBuffers(driver, [
      { addr: outside, len: 16, writable: false },
      { addr: outside, len: 1, writable: true },
    ]);
    const good = submit(driver, { type: VIRTIO_BLK_T_IN, sector: 1, inLen: 512 });
    expect((await bad).len).toBe(0);
    expect((await good).data).toEqual(backend.bytes.slice(512, 1024));
    expect(driver.status & DeviceStatus.DEVICE_NEEDS_RESET).toBe(0);
  });
});

describe('read-only disks (spec 5.2.6.2: writes fail with IOERR and write nothing)', () => {
  it.each([
    ['OUT', { type: VIRTIO_BLK_T_OUT, sector: 0, out: new Uint8Array(512).fill(1) }],
    ['DISCARD', { type: VIRTIO_BLK_T_DISCARD, out: segments([{ sector: 0, sectors: 8 }]) }],
    ['WRITE_ZEROES', { type: VIRTIO_BLK_T_WRITE_ZEROES, out: segments([{ sector: 0, sectors: 8 }]) }],
    ['SECURE_ERASE', { type: VIRTIO_BLK_T_SECURE_ERASE, out: segments([{ sector: 0, sectors: 8 }]) }],
  ])('%s', async (_name, request) => {
    const { driver, backend, blk } = await rig({ device: { readOnly: true, secureErase: true } });
    expect(blk.deviceFeatures & (1n << 5n)).not.toBe(0n);
    const before = backend.bytes.slice();
    expect((await submit(driver, request)).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(backend.bytes).toEqual(before);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 0, inLen: 512 })).status).toBe(VIRTIO_BLK_S_OK);
    expect((await submit(driver, { type: VIRTIO_BLK_T_FLUSH })).status).toBe(VIRTIO_BLK_S_OK);
  });

  it('a read-only backend makes the disk read-only', async () => {
    const { blk } = await rig({ image: new MemoryBackend(8 * 512, { readOnly: true }) });
    expect(blk.deviceFeatures & (1n << 5n)).not.toBe(0n);
  });
});

describe('range commands (spec 5.2.6: discard, write zeroes, secure erase)', () => {
  const limits = { maxSectors: 16, maxSegments: 4 };

  it('WRITE_ZEROES zeroes every segment, with and without unmap', async () => {
    const { driver, backend } = await rig({ device: { writeZeroes: limits } });
    const before = backend.bytes.slice();
    const c = await submit(driver, {
      type: VIRTIO_BLK_T_WRITE_ZEROES,
      out: segments([{ sector: 2, sectors: 3 }, { sector: 20, sectors: 16, flags: VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP }]),
      readableCuts: [20, 33],
    });
    expect(c).toEqual({ status: VIRTIO_BLK_S_OK, len: 1, data: new Uint8Array(0) });
    const expected = before.slice();
    expected.fill(0, 2 * 512, 5 * 512);
    expected.fill(0, 20 * 512, 36 * 512);
    expect(backend.bytes).toEqual(expected);
  });

  it('DISCARD succeeds for valid segments; DISCARD with unmap is UNSUPP (spec 5.2.6.2)', async () => {
    const { driver } = await rig({ device: { discard: limits } });
    expect((await submit(driver, { type: VIRTIO_BLK_T_DISCARD, out: segments([{ sector: 0, sectors: 16 }, { sector: 32, sectors: 1 }]) })).status).toBe(VIRTIO_BLK_S_OK);
    expect((await submit(driver, { type: VIRTIO_BLK_T_DISCARD, out: segments([{ sector: 0, sectors: 1, flags: VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP }]) })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  });

  it('SECURE_ERASE overwrites with zeroes; unmap is UNSUPP', async () => {
    const { driver, backend } = await rig({ device: { secureErase: limits } });
    expect((await submit(driver, { type: VIRTIO_BLK_T_SECURE_ERASE, out: segments([{ sector: 4, sectors: 4 }]) })).status).toBe(VIRTIO_BLK_S_OK);
    expect(backend.bytes.slice(4 * 512, 8 * 512).every((b) => b === 0)).toBe(true);
    expect((await submit(driver, { type: VIRTIO_BLK_T_SECURE_ERASE, out: segments([{ sector: 4, sectors: 4, flags: 1 }]) })).status).toBe(VIRTIO_BLK_S_UNSUPP);
  });

  it.each([VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_SECURE_ERASE])('type %i: unknown flags are UNSUPP, even next to an IOERR segment', async (type) => {
    const { driver, backend } = await rig({ device: { discard: limits, writeZeroes: limits, secureErase: limits } });
    const before = backend.bytes.slice();
    for (const flags of [2, 0x80000000]) {
      const c = await submit(driver, { type, out: segments([{ sector: 1000, sectors: 1 }, { sector: 0, sectors: 1, flags }]) });
      expect(c.status).toBe(VIRTIO_BLK_S_UNSUPP);
    }
    expect(backend.bytes).toEqual(before);
  });

  it.each([VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_SECURE_ERASE])('type %i: malformed, too many, too large, misaligned or out-of-range segments are IOERR and change nothing', async (type) => {
    const { driver, backend } = await rig({ device: { blockSize: 1024, discard: limits, writeZeroes: limits, secureErase: limits } });
    const before = backend.bytes.slice();
    const bad = [
      new Uint8Array(0),
      segments([{ sector: 0, sectors: 2 }]).subarray(0, 15),
      new Uint8Array(17),
      segments(Array.from({ length: 5 }, (_, i) => ({ sector: 2 * i, sectors: 2 }))),
      segments([{ sector: 0, sectors: 18 }]),
      segments([{ sector: 1, sectors: 2 }]),
      segments([{ sector: 2, sectors: 3 }]),
      segments([{ sector: 62, sectors: 4 }]),
      segments([{ sector: 0xfffffffffffffffen, sectors: 2 }]),
      segments([{ sector: 0, sectors: 2 }, { sector: 64, sectors: 2 }]),
    ];
    for (const out of bad) expect((await submit(driver, { type, out })).status, `${out.length} bytes of segments`).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type, out: segments([{ sector: 0, sectors: 2 }]), inLen: 4 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(backend.bytes).toEqual(before);
  });

  it('commands whose feature was not negotiated are UNSUPP', async () => {
    const { driver } = await rig({ device: { discard: false, writeZeroes: false, flush: false, configWce: false } });
    for (const type of [VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_SECURE_ERASE, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_LIFETIME]) {
      expect((await submit(driver, { type, out: segments([{ sector: 0, sectors: 1 }]) })).status, `type ${type}`).toBe(VIRTIO_BLK_S_UNSUPP);
    }
  });
});

describe('GET_LIFETIME (spec 5.2.6)', () => {
  it('returns the figures, and IOERR rather than reserved values', async () => {
    let figures = { preEolInfo: 1, deviceLifetimeEstTypA: 3, deviceLifetimeEstTypB: 11 };
    const { driver, blk } = await rig({ sectors: 8, device: { lifetime: () => figures } });
    expect(blk.deviceFeatures & (1n << 15n)).not.toBe(0n);
    const c = await submit(driver, { type: VIRTIO_BLK_T_GET_LIFETIME, inLen: 6, writableCuts: [1, 3] });
    expect(c.status).toBe(VIRTIO_BLK_S_OK);
    expect(c.len).toBe(7);
    expect([...new Uint16Array(c.data.slice().buffer)]).toEqual([1, 3, 11]);
    figures = { preEolInfo: 4, deviceLifetimeEstTypA: 0, deviceLifetimeEstTypB: 0 };
    expect((await submit(driver, { type: VIRTIO_BLK_T_GET_LIFETIME, inLen: 6 })).status).toBe(VIRTIO_BLK_S_IOERR);
    figures = { preEolInfo: 0, deviceLifetimeEstTypA: 12, deviceLifetimeEstTypB: 0 };
    expect((await submit(driver, { type: VIRTIO_BLK_T_GET_LIFETIME, inLen: 6 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type: VIRTIO_BLK_T_GET_LIFETIME, inLen: 5 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type: VIRTIO_BLK_T_GET_LIFETIME, inLen: 7 })).status).toBe(VIRTIO_BLK_S_IOERR);
  });
});

/** A memory image whose reads fill their first buffer and then fail, as a disk that errs partway through a transfer. */
class FailingReadBackend extends MemoryBackend {
  override async read(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    const first = buffers[0];
    if (first !== undefined) await super.read(offset, [first]);
    throw new Error('medium error');
  }
}

describe('used length (spec 2.7.8: the bytes really written; spec 5.2.6.4: not the writable total when only the status was written)', () => {
  it('a successful IN counts its data and the status byte; a failed one counts the status byte only, even when the backend filled part of the data', async () => {
    const ok = await submit((await rig()).driver, { type: VIRTIO_BLK_T_IN, sector: 2, inLen: 1024 });
    expect([ok.status, ok.len]).toEqual([VIRTIO_BLK_S_OK, 1025]);
    const { driver } = await rig({ image: new FailingReadBackend(patterned(64 * 512)) });
    const c = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 2, inLen: 1024, writableCuts: [512] });
    expect(c.status).toBe(VIRTIO_BLK_S_IOERR);
    expect(c.len).toBe(1);
    // The first half did land (a read may fail partway), which is why the length must not vouch for it.
    expect(c.data.subarray(0, 512)).toEqual(patterned(64 * 512).subarray(1024, 1536));
  });

  it('requests rejected before any I/O (past the capacity, misaligned, wrong side, UNSUPP) count the status byte only', async () => {
    const { driver } = await rig();
    const cases = [
      { type: VIRTIO_BLK_T_IN, sector: 64, inLen: 512 },
      { type: VIRTIO_BLK_T_IN, sector: 0, inLen: 100 },
      { type: VIRTIO_BLK_T_IN, sector: 0, out: new Uint8Array(512), inLen: 512 },
      { type: VIRTIO_BLK_T_GET_ID, inLen: 19 },
      { type: 0x7f, inLen: 512 },
    ];
    for (const request of cases) {
      const c = await submit(driver, request);
      expect(c.status).not.toBe(VIRTIO_BLK_S_OK);
      expect(c.len, JSON.stringify(request)).toBe(1);
      expect(c.data).toEqual(new Uint8Array(request.inLen).fill(CANARY));
    }
  });
});
