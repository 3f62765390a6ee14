/**
 * A real Linux guest (Debian's stock kernel and its virtio drivers, under
 * QEMU) drives our vhost-user-blk back-end: one boot per row of the matrix,
 * each running several checks inside the guest (scripts/guest/init).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioBlk } from '@virtio-ts/virtio-blk';
import { FileBackend } from '@virtio-ts/virtio-blk/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VhostUserServer } from '../src/index.js';
import { READ_ONLY_SERIAL, RW_EXTENT, blockSuiteChecks, buildGuest, detectAcceleration, findExecutable, qemuArgs, runGuest, type GuestImages, type GuestRun, type Machine } from '../src/qemu/index.js';

const BOOT_TIMEOUT_MS = 420_000;
const DISK_BYTES = 64 * 2 ** 20;
const qemu = findExecutable('qemu-system-x86_64');
if (qemu === undefined) console.warn('SKIP: guest tests need qemu-system-x86_64 (Debian package qemu-system-x86; bash scripts/setup.sh installs it)');

let guest: GuestImages | undefined;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vhost-user-guest-'));
  if (qemu === undefined) return;
  guest = await buildGuest({ progress: (line) => console.log(line) });
}, BOOT_TIMEOUT_MS);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Served {
  readonly socket: string;
  readonly image: string;
  readonly server: VhostUserServer;
  readonly logs: string[];
  close(): Promise<void>;
}

/** Serves a fresh image through our back-end: a VirtioBlk over a FileBackend. */
async function serve(name: string, options: { readOnly?: boolean; queues?: number; serial: string }): Promise<Served> {
  const image = join(dir, `${name}.img`);
  writeFileSync(image, '');
  truncateSync(image, DISK_BYTES);
  const backend = await FileBackend.open(image, { readOnly: options.readOnly ?? false });
  // Over virtio-mmio Linux sizes rings at QEMU's maximum, 1024.
  const device = new VirtioBlk({ backend, serial: options.serial, readOnly: options.readOnly ?? false, queues: options.queues ?? 1, queueSize: 1024 });
  const socket = join(dir, `${name}.sock`);
  const logs: string[] = [];
  const server = new VhostUserServer(device, { socketPath: socket, log: (m) => logs.push(m) });
  server.listen();
  return {
    socket,
    image,
    server,
    logs,
    close: async () => {
      server.close();
      await backend.close();
    },
  };
}

async function boot(machine: Machine, cpus: number, disks: Parameters<typeof qemuArgs>[0]['disks'], checks: string[]): Promise<GuestRun> {
  const args = qemuArgs({ machine, cpus, guest: guest as GuestImages, acceleration: detectAcceleration(), append: `vt.checks=${checks.join(',')}`, disks });
  return runGuest(args, { timeoutMs: BOOT_TIMEOUT_MS });
}

/** Every check ran and passed; on failure the message carries the guest's output. */
function expectPassed(run: GuestRun, names: string[]): void {
  const failed = run.checks.filter((c) => !c.pass);
  const context = `guest output:\n${run.output.slice(-4000)}`;
  expect(failed, context).toEqual([]);
  expect(run.checks.map((c) => c.name), context).toEqual(names);
  expect(run.done, context).toBe(true);
}

/** The md5 of `mib` MiB at `offsetMib` MiB in `image`, as the guest's rw check reports it. */
function imageMd5(image: string, offsetMib: number, mib: number): string {
  const bytes = readFileSync(image).subarray(offsetMib * 2 ** 20, (offsetMib + mib) * 2 ** 20);
  return createHash('md5').update(bytes).digest('hex');
}

function checkDetail(run: GuestRun, name: string): string {
  return run.checks.find((c) => c.name === name)?.detail ?? '';
}

const matrix: { machine: Machine; transport: string; packed: boolean; queues: number }[] = [
  { machine: 'q35', transport: 'virtio-pci', packed: false, queues: 1 },
  { machine: 'q35', transport: 'virtio-pci', packed: true, queues: 2 },
  { machine: 'microvm', transport: 'virtio-mmio', packed: false, queues: 2 },
  { machine: 'microvm', transport: 'virtio-mmio', packed: true, queues: 1 },
];

describe.skipIf(qemu === undefined)('Linux guest through our vhost-user-blk', () => {
  for (const row of matrix) {
    const name = `${row.machine} (${row.transport}), ${row.packed ? 'packed' : 'split'} rings, ${row.queues} queue(s): finds the disk, writes, reads back, flushes, discards; a read-only disk refuses writes`;
    it(
      name,
      async () => {
        const tag = `${row.machine}-${row.packed ? 'p' : 's'}${row.queues}`;
        const rw = await serve(`${tag}-rw`, { queues: row.queues, serial: `vt-${tag}` });
        const ro = await serve(`${tag}-ro`, { readOnly: true, serial: READ_ONLY_SERIAL });
        try {
          // Linux runs one request queue per CPU at most.
          const run = await boot(
            row.machine,
            row.queues,
            [
              { kind: 'vhost-user', socket: rw.socket, queues: row.queues, packed: row.packed },
              { kind: 'vhost-user', socket: ro.socket, packed: row.packed },
            ],
            blockSuiteChecks({ diskBytes: DISK_BYTES, serial: `vt-${tag}`, queues: row.queues, packed: row.packed }),
          );
          expectPassed(run, ['disk', 'queues', 'packed', 'rw', 'flush', 'discard', 'disk', 'readonly']);
          // The data the guest wrote and read back is in the image file, at the offset it wrote to.
          expect(checkDetail(run, 'rw')).toBe(`md5 ${imageMd5(rw.image, RW_EXTENT.offsetMib, RW_EXTENT.mib)}`);
          expect(rw.logs.filter((l) => l.includes('refused') || l.includes('NEEDS_RESET'))).toEqual([]);
        } finally {
          await rw.close();
          await ro.close();
        }
      },
      BOOT_TIMEOUT_MS,
    );
  }
});
