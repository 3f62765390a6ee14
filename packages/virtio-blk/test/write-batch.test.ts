/**
 * With `aio: 'native'` the file backend hands writes started in one
 * event-loop turn to the kernel together: watched under strace in a child process, WRITES
 * concurrent writes are one io_submit with one IOCB_CMD_PWRITEV per write,
 * made off the main thread, while a lone write is one positional write; the
 * image then holds every byte written. A batch whose writes fail or come back
 * short settles each write on its own. The default, 'threads', makes one
 * positional write per write.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { straceWorks, traceChild, writeOffset, type TracedCall } from './syscall-trace.js';
import { BATCH_STRIDE, WRITES } from './write-batch-pattern.js';
import { LIMIT, WRITE_BYTES, errorWrites } from './write-error-pattern.js';

const TRACED = straceWorks();
if (!TRACED) console.warn('SKIP: strace cannot trace processes here (install strace; ptrace must be allowed): how writes reach the kernel is not observed');

/** Runs `child` on a fresh image of `bytes` under strace; its output and the writes to the image strace saw. */
async function traced(dir: string, child: string, bytes: number, ...args: string[]): Promise<{ image: string; out: string; writes: TracedCall[] }> {
  const image = join(dir, 'disk.img');
  await writeFile(image, new Uint8Array(bytes));
  const { out, calls } = await traceChild(dir, child, [image, ...args], ['pwrite64', 'pwritev', 'pwritev2', 'io_submit'], image);
  return { image, out, writes: calls };
}

describe.skipIf(!TRACED)("aio: 'native': batched writes (file backend with koffi, Linux AIO)", () => {
  let dir: string;
  let out: string;
  let writes: TracedCall[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-blk-write-batch-'));
    ({ out, writes } = await traced(dir, 'write-batch-child.ts', (WRITES + 1) * BATCH_STRIDE, 'native'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the image holds every byte of every write', () => {
    expect(out).toMatch(/^VERIFY ok$/m);
  });

  it('a lone write is one positional write on a thread-pool thread', () => {
    const pid = Number(/^PID (\d+)$/m.exec(out)?.[1]);
    const lone = writes.filter((c) => writeOffset(c) === 0);
    expect(lone.map((c) => c.name)).toEqual([expect.stringMatching(/^pwrite/)]);
    expect(lone[0]?.pid).not.toBe(pid);
  });

  it('writes started together are one io_submit, one iocb per write, off the main thread', () => {
    const pid = Number(/^PID (\d+)$/m.exec(out)?.[1]);
    const batched = writes.filter((c) => writeOffset(c) !== 0);
    expect(batched.map((c) => [c.name, c.result])).toEqual(Array.from({ length: WRITES }, () => ['io_submit:pwritev', 1]));
    expect(batched.map(writeOffset)).toEqual(Array.from({ length: WRITES }, (_, i) => (i + 1) * BATCH_STRIDE));
    expect(new Set(batched.map((c) => c.entry)).size).toBe(1);
    expect(batched[0]?.pid).not.toBe(pid);
  });
});

describe.skipIf(!TRACED)("aio: 'threads', the default", () => {
  let dir: string;
  let run: { image: string; out: string; writes: TracedCall[] };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-blk-write-threads-'));
    run = await traced(dir, 'write-batch-child.ts', (WRITES + 1) * BATCH_STRIDE, 'threads');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('makes one positional write per write, and no io_submit', () => {
    expect(run.out).toMatch(/^VERIFY ok$/m);
    expect(run.writes.map((c) => c.name)).toEqual(Array.from({ length: WRITES + 1 }, () => expect.stringMatching(/^pwrite/)));
  });
});

describe.skipIf(!TRACED)('a batch with failed and short writes (RLIMIT_FSIZE)', () => {
  let dir: string;
  let run: { image: string; out: string; writes: TracedCall[] };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-blk-write-error-'));
    run = await traced(dir, 'write-error-child.ts', 64 << 10);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the three writes went to the kernel as one io_submit', () => {
    const batched = run.writes.filter((c) => c.name === 'io_submit:pwritev');
    expect(batched.map(writeOffset)).toEqual([...errorWrites]);
    expect(new Set(batched.map((c) => c.entry)).size).toBe(1);
  });

  it('each write settles on its own: inside the limit ok, across it and past it EFBIG', () => {
    expect(run.out.trim().split('\n')).toEqual([`WRITE ${errorWrites[0]} ok`, `WRITE ${errorWrites[1]} EFBIG`, `WRITE ${errorWrites[2]} EFBIG`]);
  });

  it('the short write kept the part below the limit, and nothing went past it', async () => {
    expect((await stat(run.image)).size).toBe(LIMIT);
    const bytes = await readFile(run.image);
    expect(bytes.subarray(0, WRITE_BYTES).every((b) => b === 0xa5)).toBe(true);
    expect(bytes.subarray(LIMIT - WRITE_BYTES / 2, LIMIT).every((b) => b === 0xa5)).toBe(true);
  });
});
