/**
 * The file backend serves reads of cached data on the event loop and sends
 * the rest to the thread pool. Watched under strace in a child process: a
 * read of pages in the page cache is one preadv2(RWF_NOWAIT) on the main
 * thread and nothing else; a read of evicted pages gets EAGAIN there and is
 * done by another thread (the thread pool) — both return the image's bytes.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patternByte } from './page-cache-pattern.js';
import { straceWorks, traceChild, type TracedCall } from './syscall-trace.js';

const TRACED = straceWorks();
if (!TRACED) console.warn('SKIP: strace cannot trace processes here (install strace; ptrace must be allowed): which thread reads the image is not observed');

const IMAGE_BYTES = 1 << 20;
const LENGTH = 16 << 10;
const CACHED = 64 << 10;
const EVICTED = 512 << 10;

interface Run {
  readonly image: string;
  readonly pid: number;
  readonly evicted: boolean;
  readonly out: string;
  readonly reads: TracedCall[];
}

describe.skipIf(!TRACED)('page-cache reads on the event loop (file backend with koffi)', () => {
  let dir: string;
  let run: Run;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-blk-page-cache-'));
    const image = join(dir, 'disk.img');
    const bytes = new Uint8Array(IMAGE_BYTES);
    for (let i = 0; i < bytes.length; i++) bytes[i] = patternByte(i);
    const file = await open(image, 'w');
    await file.write(bytes, 0, bytes.length, 0);
    await file.datasync();
    await file.close();
    const { out, calls } = await traceChild(dir, 'page-cache-child.ts', [image, String(CACHED), String(EVICTED), String(LENGTH)], ['pread64', 'preadv', 'preadv2'], image);
    run = {
      image,
      pid: Number(/^PID (\d+)$/m.exec(out)?.[1]),
      evicted: /^EVICTED yes$/m.test(out),
      out,
      reads: calls,
    };
    if (!run.evicted) console.warn(`SKIP: the file system under ${tmpdir()} keeps the image's pages cached after POSIX_FADV_DONTNEED (tmpfs?): the thread-pool fallback is not observed`);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The calls that read the range at `offset`. */
  const readsAt = (offset: number): TracedCall[] => run.reads.filter((c) => c.args.split(', ').includes(String(offset)));

  it('reads cached pages with one preadv2(RWF_NOWAIT) on the main thread', () => {
    expect(run.out).toMatch(new RegExp(`^READ ${CACHED} ok$`, 'm'));
    const calls = readsAt(CACHED);
    expect(calls.map((c) => [c.pid, c.name, c.result])).toEqual([[run.pid, 'preadv2', LENGTH]]);
    expect(calls[0]?.args).toContain('RWF_NOWAIT');
  });

  it('reads evicted pages on a thread-pool thread after EAGAIN on the main thread', (context) => {
    if (!run.evicted) context.skip();
    expect(run.out).toMatch(new RegExp(`^READ ${EVICTED} ok$`, 'm'));
    const [first, ...rest] = readsAt(EVICTED);
    expect(first).toMatchObject({ pid: run.pid, name: 'preadv2', result: -1, error: 'EAGAIN' });
    expect(rest.length).toBeGreaterThan(0);
    for (const c of rest) expect(c.pid).not.toBe(run.pid);
    expect(rest.reduce((sum, c) => sum + c.result, 0)).toBe(LENGTH);
  });
});
