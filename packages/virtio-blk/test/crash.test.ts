import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROUND_SECTORS, roundData } from './crash-pattern.js';
import { expectBytes } from './setup.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = 64;
const KILL_AFTER = 5;

/**
 * Runs the device in a child process, lets it acknowledge KILL_AFTER + 1
 * flushed rounds, then SIGKILLs it wherever it is (usually mid-round, with
 * writes in flight) and returns the rounds it acknowledged.
 */
function runAndKill(image: string): Promise<{ acked: number; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=@virtio-ts/source', '--import', 'tsx', join(here, 'crash-child.ts'), image], {
      cwd: join(here, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let acked = -1;
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      for (const m of out.matchAll(/^ACK (\d+)$/gm)) acked = Math.max(acked, Number(m[1]));
      if (acked >= KILL_AFTER) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === null && code !== 0) reject(new Error(`device process failed (exit ${code}): ${err.trim()}`));
      else resolve({ acked, signal });
    });
  });
}

describe('crash consistency (spec 5.2.6.2: writes completed before a completed FLUSH are stable)', () => {
  it('writes acknowledged before a completed FLUSH survive killing the device process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virtio-blk-crash-'));
    try {
      const image = join(dir, 'disk.img');
      await writeFile(image, new Uint8Array(ROUNDS * ROUND_SECTORS * 512));
      const { acked, signal } = await runAndKill(image);
      expect(signal).toBe('SIGKILL');
      expect(acked).toBeGreaterThanOrEqual(KILL_AFTER);
      const file = new Uint8Array(await readFile(image));
      for (let round = 0; round <= acked; round++) {
        for (let i = 0; i < ROUND_SECTORS; i += 8) {
          const at = (round * ROUND_SECTORS + i) * 512;
          expectBytes(file.subarray(at, at + 8 * 512), roundData(round, i), `round ${round} sectors +${i}`);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
