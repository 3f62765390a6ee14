/**
 * Crash consistency (spec 5.2.6.2: writes completed before a completed FLUSH
 * are stable). A child process runs the device on a file image and prints
 * `ACK <round>` once a round's writes and the FLUSH after them were used; it
 * is SIGKILLed mid-round. Two observations:
 *
 * - the image holds every acknowledged round (nothing acknowledged was still
 *   held in the process);
 * - under strace, each acknowledgement was preceded by an fdatasync (or
 *   fsync) of the image that began after the round's last write returned and
 *   succeeded before the ACK was printed. A process kill cannot show that data
 *   reached the disk, but this shows the device asked the kernel for exactly
 *   that before it acknowledged; a FLUSH that skipped the sync fails here.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUND_SECTORS, roundData } from './crash-pattern.js';
import { expectBytes } from './setup.js';
import { parseTrace, straceWorks, writeOffset, writtenText, type TracedCall } from './syscall-trace.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = 64;
const KILL_AFTER = 5;
const TRACED = straceWorks();
if (!TRACED) console.warn('SKIP: strace cannot trace processes here (install strace; ptrace must be allowed): fdatasync on FLUSH is not observed');

interface Run {
  readonly image: string;
  readonly acked: number;
  readonly signal: NodeJS.Signals | null;
  /** The strace log, when traced. */
  readonly trace: string | undefined;
}

/**
 * Runs the device in a child process (under strace when it works), lets it
 * acknowledge KILL_AFTER + 1 flushed rounds, then SIGKILLs it wherever it is
 * (usually mid-round, with writes in flight).
 */
async function runAndKill(dir: string): Promise<Run> {
  const image = join(dir, 'disk.img');
  const traceFile = join(dir, 'strace.log');
  await writeFile(image, new Uint8Array(ROUNDS * ROUND_SECTORS * 512));
  const node = [process.execPath, '--conditions=@virtio-ts/source', '--import', 'tsx', join(here, 'crash-child.ts'), image];
  // -s 16 also caps the iocbs strace prints per io_submit at 16: a round's writes (ROUND_SECTORS / 8) fit.
  const strace = ['-f', '-y', '-xx', '-s', '16', '-qq', '-e', 'trace=pwrite64,pwritev,pwritev2,io_submit,write,fdatasync,fsync', '-o', traceFile];
  const [command, ...args] = TRACED ? ['strace', ...strace, ...node] : node;
  const { acked, signal } = await new Promise<{ acked: number; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const child = spawn(command as string, args, { cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    let acked = -1;
    let out = '';
    let err = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      for (const m of out.matchAll(/^ACK (\d+)$/gm)) acked = Math.max(acked, Number(m[1]));
      const pid = /^PID (\d+)$/m.exec(out)?.[1];
      // The device's own process, not strace, is killed: strace then reports what it saw up to the kill.
      if (acked >= KILL_AFTER && pid !== undefined && !killed) {
        killed = true;
        process.kill(Number(pid), 'SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (!killed) reject(new Error(`device process ended before it was killed (exit ${code ?? signal}): ${err.trim()}`));
      else resolve({ acked, signal: signal ?? (code === 128 + 9 ? 'SIGKILL' : null) });
    });
  });
  return { image, acked, signal, trace: TRACED ? await readFile(traceFile, 'utf8') : undefined };
}

describe('crash consistency (spec 5.2.6.2: writes completed before a completed FLUSH are stable)', () => {
  let dir: string;
  let run: Run;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtio-blk-crash-'));
    run = await runAndKill(dir);
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes acknowledged before a completed FLUSH survive killing the device process', async () => {
    expect(run.signal).toBe('SIGKILL');
    expect(run.acked).toBeGreaterThanOrEqual(KILL_AFTER);
    const file = new Uint8Array(await readFile(run.image));
    for (let round = 0; round <= run.acked; round++) {
      for (let i = 0; i < ROUND_SECTORS; i += 8) {
        const at = (round * ROUND_SECTORS + i) * 512;
        expectBytes(file.subarray(at, at + 8 * 512), roundData(round, i), `round ${round} sectors +${i}`);
      }
    }
  });

  it.skipIf(!TRACED)('every acknowledged FLUSH was an fdatasync of the image that began after the round’s writes returned and succeeded before the acknowledgement', () => {
    const calls = parseTrace(run.trace ?? '');
    const onImage = (c: TracedCall): boolean => c.target === run.image;
    // Buffered writes submitted through Linux AIO are done when io_submit returns (only O_DIRECT AIO completes later).
    const writes = calls.filter((c) => onImage(c) && (c.name.startsWith('pwrite') || c.name === 'io_submit:pwritev') && c.result > 0);
    const syncs = calls.filter((c) => onImage(c) && (c.name === 'fdatasync' || c.name === 'fsync') && c.result === 0);
    const acks = new Map(calls.filter((c) => c.name === 'write').map((c) => [writtenText(c), c] as const));
    expect(writes.length, 'writes to the image seen by strace').toBeGreaterThanOrEqual((run.acked + 1) * (ROUND_SECTORS / 8));
    const roundBytes = ROUND_SECTORS * 512;
    // The parent can read the last ACK from the pipe before strace reports that
    // write's return; a SIGKILL then leaves it unfinished in the trace. Every
    // earlier round must be there in full.
    const lastTraced = acks.has(`ACK ${run.acked}\n`) ? run.acked : run.acked - 1;
    expect(lastTraced, 'acknowledged rounds in the trace').toBeGreaterThanOrEqual(KILL_AFTER - 1);
    for (let round = 0; round <= lastTraced; round++) {
      const ack = acks.get(`ACK ${round}\n`);
      expect(ack, `the ACK ${round} line in the trace`).toBeDefined();
      const ackAt = (ack as TracedCall).entry;
      const roundWrites = writes.filter((w) => Math.floor(writeOffset(w) / roundBytes) === round && w.exit < ackAt);
      expect(roundWrites.length, `round ${round}: writes before its ACK`).toBeGreaterThanOrEqual(ROUND_SECTORS / 8);
      const lastWrite = Math.max(...roundWrites.map((w) => w.exit));
      const covering = syncs.filter((s) => s.entry > lastWrite && s.exit < ackAt);
      expect(covering.length, `round ${round}: an fdatasync after its writes and before its ACK`).toBeGreaterThan(0);
    }
  });
});
