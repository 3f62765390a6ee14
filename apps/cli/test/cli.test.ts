import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliProcess, runCli } from './cli.js';

const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function oneLineError(result: { status: number | null; stderr: string }, status: number, pattern: RegExp): void {
  expect(result.status).toBe(status);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
}

describe('virtio-ts vhost-user blk: errors for people', () => {
  const image = join(dir, 'disk.img');
  writeFileSync(image, '');
  truncateSync(image, 2 ** 20);

  it('a bad flag is a one-line usage error with status 2', () => {
    oneLineError(runCli(['vhost-user', 'blk', '--socket', join(dir, 's'), '--image', image, '--bogus']), 2, /^virtio-ts: Unknown option '--bogus' \(usage: virtio-ts vhost-user blk/);
    oneLineError(runCli(['vhost-user', 'blk', '--socket', join(dir, 's'), '--image', image, '--queues', 'x']), 2, /--queues must be an integer from 1 to 64, got 'x'/);
    oneLineError(runCli(['vhost-user', 'blk', '--image', image]), 2, /--socket PATH is required/);
    oneLineError(runCli(['vhost-user', 'tape']), 2, /unknown device 'tape'; devices: blk/);
    oneLineError(runCli(['frobnicate']), 2, /unknown command 'frobnicate'/);
  }, 120_000);

  it('a missing image says how to create it, status 1', () => {
    oneLineError(runCli(['vhost-user', 'blk', '--socket', join(dir, 's'), '--image', join(dir, 'nope.img')]), 1, /image .*nope\.img does not exist: create it/);
  }, 60_000);

  it('a socket path that is not a socket, or that another back-end serves, is refused', async () => {
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    oneLineError(runCli(['vhost-user', 'blk', '--socket', file, '--image', image]), 1, /socket path .*plain exists and is not a socket/);
    const socket = join(dir, 'busy.sock');
    const first = new CliProcess(['vhost-user', 'blk', '--socket', socket, '--image', image]);
    try {
      await first.waitFor(/serving vhost-user-blk/);
      const other = join(dir, 'other.img');
      writeFileSync(other, '');
      truncateSync(other, 2 ** 20);
      oneLineError(runCli(['vhost-user', 'blk', '--socket', socket, '--image', other]), 1, /socket path .*busy\.sock is in use by another back-end/);
    } finally {
      await first.kill('SIGTERM');
    }
    expect(first.child.exitCode).toBe(0);
  }, 120_000);
});
