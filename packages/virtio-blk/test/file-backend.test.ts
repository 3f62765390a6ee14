import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { coreTransportFactory, type VirtioDriver } from '@virtio-ts/driver';
import { GuestMemory } from '@virtio-ts/virtqueue';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VirtioBlk,
  BlkConfigOffset,
  type VirtioBlkOptions,
} from '../src/index.js';
import { FileBackend, ImageError, type FileBackendOptions } from '../src/node/index.js';
import { expectBytes, patterned, segments, start, submit } from './setup.js';

const MiB = 1 << 20;
let dir: string;
const open: FileBackend[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'virtio-blk-'));
});

afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
  await rm(dir, { recursive: true, force: true });
});

async function image(name: string, bytes: Uint8Array | number): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof bytes === 'number' ? new Uint8Array(bytes) : bytes);
  return path;
}

async function openImage(path: string, options: FileBackendOptions = {}): Promise<FileBackend> {
  const backend = await FileBackend.open(path, options);
  open.push(backend);
  return backend;
}

async function disk(path: string, backendOptions: FileBackendOptions = {}, options: Partial<VirtioBlkOptions> = {}): Promise<{ driver: VirtioDriver; blk: VirtioBlk; backend: FileBackend }> {
  const backend = await openImage(path, backendOptions);
  const blk = new VirtioBlk({ ...options, backend });
  const driver = await start(coreTransportFactory, GuestMemory.create(16 * MiB), blk);
  return { driver, blk, backend };
}

async function rejection(promise: Promise<unknown>): Promise<ImageError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ImageError);
  return error as ImageError;
}

describe('opening an image', () => {
  it('a missing image is a one-line error that says what to do', async () => {
    const e = await rejection(FileBackend.open(join(dir, 'nope.img')));
    expect(e.reason).toBe('missing');
    expect(e.message).toMatch(/does not exist: create it/);
    expect(e.message).not.toContain('\n');
  });

  it.each([0, 511])('an image of %i bytes is too small', async (size) => {
    const e = await rejection(FileBackend.open(await image('small.img', size)));
    expect(e.reason).toBe('too-small');
    expect(e.message).toMatch(/smaller than one 512-byte sector/);
  });

  it('a directory is refused', async () => {
    const e = await rejection(FileBackend.open(dir));
    expect(e.message).toMatch(/directory|not a regular file/);
  });

  it('an image in use is refused: exclusive for read-write, shared for read-only', async () => {
    const path = await image('disk.img', MiB);
    const first = await openImage(path);
    const e = await rejection(FileBackend.open(path));
    expect(e.reason).toBe('locked');
    expect(e.message).toBe(`image ${path} is in use by another process: stop it, or open the image read-only in both`);
    expect((await rejection(FileBackend.open(path, { readOnly: true }))).reason).toBe('locked');
    await first.close();
    const reader1 = await openImage(path, { readOnly: true });
    const reader2 = await openImage(path, { readOnly: true });
    expect(reader1.readOnly && reader2.readOnly).toBe(true);
    expect((await rejection(FileBackend.open(path))).reason).toBe('locked');
  });

  it('lock: false opens an image another opener holds', async () => {
    const path = await image('disk.img', MiB);
    await openImage(path);
    await expect(openImage(path, { lock: false })).resolves.toBeInstanceOf(FileBackend);
  });
});

describe('without koffi (an optional peer dependency)', () => {
  it('the backend still opens and zeroes, writing zeroes instead of punching holes and taking no lock; a warning says what is lost and how to get it back', async () => {
    const path = await image('disk.img', patterned(MiB / 8, 9));
    const test = dirname(fileURLToPath(import.meta.url));
    const child = spawnSync(process.execPath, ['--conditions=@virtio-ts/source', '--import', 'tsx', '--import', join(test, 'hide-koffi.mjs'), join(test, 'no-koffi-child.ts'), path], {
      cwd: join(test, '..'),
      encoding: 'utf8',
    });
    expect(child.status, child.stderr).toBe(0);
    expect(child.stderr).toMatch(/\[VIRTIO_BLK_NO_KOFFI\].*koffi is not installed.*install koffi/);
    const seen = JSON.parse(child.stdout) as { canUnmap: boolean; zeroed: boolean; around: number[]; discardedKept: boolean };
    expect(seen).toEqual({ canUnmap: false, zeroed: true, around: [patterned(MiB / 8, 9)[4095], patterned(MiB / 8, 9)[4096 + 8192]], discardedKept: true });
  });
});

describe('I/O through the device on a file image', () => {
  it('reads and writes round-trip, single and scattered buffers (positional I/O, readv/writev)', async () => {
    const initial = patterned(4 * MiB, 3);
    const path = await image('disk.img', initial);
    const { driver, blk } = await disk(path);
    expect(blk.capacity).toBe(8192);
    const r = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 100, inLen: 8192 });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.data).toEqual(initial.slice(100 * 512, 100 * 512 + 8192));
    const scattered = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 8, inLen: 4096, writableCuts: [512, 1000, 3000] });
    expect(scattered.data).toEqual(initial.slice(8 * 512, 8 * 512 + 4096));
    const data = patterned(12288, 77);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 5000, out: data })).status).toBe(VIRTIO_BLK_S_OK);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 6000, out: data, readableCuts: [16, 4000, 4100, 9000] })).status).toBe(VIRTIO_BLK_S_OK);
    expect((await submit(driver, { type: VIRTIO_BLK_T_FLUSH })).status).toBe(VIRTIO_BLK_S_OK);
    const file = new Uint8Array(await readFile(path));
    expectBytes(file.subarray(5000 * 512, 5000 * 512 + 12288), data);
    expectBytes(file.subarray(6000 * 512, 6000 * 512 + 12288), data);
    expectBytes(file.subarray(0, 5000 * 512), initial.subarray(0, 5000 * 512));
  });

  it('a read-only image makes a read-only disk: writes fail with IOERR, the file is unchanged', async () => {
    const initial = patterned(MiB, 9);
    const path = await image('disk.img', initial);
    const { driver, blk } = await disk(path, { readOnly: true });
    expect(blk.deviceFeatures & (1n << BigInt(VIRTIO_BLK_F_RO))).not.toBe(0n);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 0, out: new Uint8Array(512) })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 0, inLen: 512 })).data).toEqual(initial.slice(0, 512));
    expectBytes(new Uint8Array(await readFile(path)), initial);
  });

  it('DISCARD and WRITE_ZEROES with unmap punch holes; WRITE_ZEROES without unmap zeroes; the size never changes', async () => {
    const path = await image('disk.img', patterned(8 * MiB, 1));
    const { driver, backend } = await disk(path);
    const before = await stat(path);
    if (!backend.canUnmap) {
      console.warn(`SKIP: the file system under ${dir} cannot punch holes; only zeroing is checked`);
    }
    const discard = await submit(driver, { type: VIRTIO_BLK_T_DISCARD, out: segments([{ sector: 0, sectors: 2048 }]) });
    expect(discard.status).toBe(VIRTIO_BLK_S_OK);
    const zero = await submit(driver, {
      type: VIRTIO_BLK_T_WRITE_ZEROES,
      out: segments([
        { sector: 4096, sectors: 2048, flags: VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP },
        { sector: 8192, sectors: 1000 },
      ]),
    });
    expect(zero.status).toBe(VIRTIO_BLK_S_OK);
    const after = await stat(path);
    expect(after.size).toBe(before.size);
    if (backend.canUnmap) expect(after.blocks).toBeLessThanOrEqual(before.blocks - 2 * 2048);
    const file = new Uint8Array(await readFile(path));
    expect(file.subarray(4096 * 512, 6144 * 512).every((b) => b === 0)).toBe(true);
    expect(file.subarray(8192 * 512, 9192 * 512).every((b) => b === 0)).toBe(true);
    expect(file.subarray(9192 * 512, 9193 * 512)).toEqual(patterned(8 * MiB, 1).subarray(9192 * 512, 9193 * 512));
  });

  it('direct I/O round-trips, whatever the alignment of the guest buffers', async () => {
    const initial = patterned(2 * MiB, 4);
    const path = await image('disk.img', initial);
    const { driver } = await disk(path, { direct: true });
    const data = patterned(8192, 21);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 64, out: data })).status).toBe(VIRTIO_BLK_S_OK);
    expect((await submit(driver, { type: VIRTIO_BLK_T_OUT, sector: 80, out: data, readableCuts: [16, 16 + 100, 16 + 4196] })).status).toBe(VIRTIO_BLK_S_OK);
    for (const sector of [64, 80]) {
      const r = await submit(driver, { type: VIRTIO_BLK_T_IN, sector, inLen: 8192, writableCuts: [4096] });
      expect(r.data).toEqual(data);
    }
    expect((await submit(driver, { type: VIRTIO_BLK_T_FLUSH })).status).toBe(VIRTIO_BLK_S_OK);
    const file = new Uint8Array(await readFile(path));
    expect(file.subarray(64 * 512, 64 * 512 + 8192)).toEqual(data);
    expect(file.subarray(80 * 512, 80 * 512 + 8192)).toEqual(data);
  });

  it('a backend error fails the request with IOERR: the image was truncated behind the device', async () => {
    const path = await image('disk.img', patterned(MiB, 6));
    const { driver } = await disk(path);
    await truncate(path, MiB / 2);
    const c = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 1500, inLen: 4096 });
    expect(c.status).toBe(VIRTIO_BLK_S_IOERR);
    // spec 2.7.8: the read filled nothing the driver may rely on; only the status byte counts.
    expect(c.len).toBe(1);
    // Across the new end: a short read, resumed, then the end of the file.
    const across = await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 1020, inLen: 4096, writableCuts: [1024] });
    expect(across.status).toBe(VIRTIO_BLK_S_IOERR);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 0, inLen: 512 })).status).toBe(VIRTIO_BLK_S_OK);
  });

  it('spec 5.2.6.3: resizing the image updates capacity and raises a configuration change interrupt', async () => {
    const path = await image('disk.img', MiB);
    const { driver, blk } = await disk(path);
    expect(driver.readConfigU64(BlkConfigOffset.capacity)).toBe(2048n);
    const generation = driver.transport.configGeneration();
    await blk.resize(3 * MiB);
    expect((await stat(path)).size).toBe(3 * MiB);
    expect(driver.readConfigU64(BlkConfigOffset.capacity)).toBe(6144n);
    expect(driver.interrupts.config).toBe(1);
    expect(driver.transport.configGeneration()).not.toBe(generation);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 6143, inLen: 512 })).status).toBe(VIRTIO_BLK_S_OK);
    await blk.resize(MiB);
    expect((await submit(driver, { type: VIRTIO_BLK_T_IN, sector: 2048, inLen: 512 })).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(driver.interrupts.config).toBe(2);
  });
});
