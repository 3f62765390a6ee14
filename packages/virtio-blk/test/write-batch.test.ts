/**
 * The file backend hands writes started in one event-loop turn to the
 * kernel together: watched under strace in a child process, WRITES
 * concurrent writes are one io_submit with one IOCB_CMD_PWRITEV per write,
 * made off the main thread, while a lone write is one positional write; the
 * image then holds every byte written.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTrace, straceWorks, writeOffset, type TracedCall } from './syscall-trace.js';
import { BATCH_STRIDE, WRITES } from './write-batch-pattern.js';

const here = dirname(fileURLToPath(import.meta.url));
const TRACED = straceWorks();
if (!TRACED) console.warn('SKIP: strace cannot trace processes here (install strace; ptrace must be allowed): how writes reach the kernel is not observed');

describe.skipIf(!TRACED)('batched writes (file backend with koffi, Linux AIO)', () => {
  let dir: string;
  let image: string;
  let out: string;
  let writes: TracedCall[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-blk-write-batch-'));
    image = join(dir, 'disk.img');
    await writeFile(image, new Uint8Array((WRITES + 1) * BATCH_STRIDE));
    const traceFile = join(dir, 'strace.log');
    const child = spawnSync(
      'strace',
      ['-f', '-y', '-xx', '-s', '32', '-qq', '-e', 'trace=pwrite64,pwritev,pwritev2,io_submit', '-o', traceFile, process.execPath, '--conditions=@virtio-ts/source', '--import', 'tsx', join(here, 'write-batch-child.ts'), image],
      { cwd: join(here, '..'), encoding: 'utf8' },
    );
    if (child.status !== 0) throw new Error(`write-batch child failed (${child.status ?? child.signal}): ${child.stderr.trim()}`);
    out = child.stdout;
    writes = parseTrace(await readFile(traceFile, 'utf8')).filter((c) => c.target === image);
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
