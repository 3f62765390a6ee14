/**
 * Guest-side block I/O through three paths to the same raw image, in one run:
 * our vhost-user-blk back-end, qemu-storage-daemon's vhost-user-blk export,
 * and QEMU's built-in virtio-blk. Each boots the test guest once (q35, split
 * ring, one queue) and runs, inside the guest:
 *   seqwrite / seqread: dd with bs=1M and O_DIRECT over 512 MiB;
 *   randread: 4 KiB O_DIRECT reads for 10 s, in runs of 64 sequential 4 KiB
 *     requests from a random 4 KiB-aligned offset (busybox dd per run; the
 *     guest has no fio), reported as requests per second.
 * Two interleaved rounds; the best figure of each path counts. Prints BENCH
 * lines and the ratios ours / qemu-storage-daemon and ours / built-in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioBlk } from '@virtio-ts/virtio-blk';
import { FileBackend } from '@virtio-ts/virtio-blk/node';
import { VhostUserServer } from '../src/index.js';
import { buildGuest, detectAcceleration, findExecutable, qemuArgs, runGuest, type BuiltinDisk, type GuestImages, type VhostUserDisk } from '../src/qemu/index.js';

const PKG = '@virtio-ts/vhost-user';
const IMAGE_BYTES = 512 * 2 ** 20;
/** Each path is measured this many times, interleaved; the best figure counts (the machine is shared and noisy). */
const ROUNDS = 2;
const CHECKS = 'vt.checks=seqwrite:vda:512,seqread:vda:512,randread:vda:10';

interface Figures {
  seqwrite: number;
  seqread: number;
  randread: number;
}

async function measure(guest: GuestImages, disk: VhostUserDisk | BuiltinDisk): Promise<Figures> {
  const run = await runGuest(qemuArgs({ machine: 'q35', guest, acceleration: detectAcceleration(), append: CHECKS, disks: [disk] }), { timeoutMs: 600_000 });
  const value = (name: string): number => {
    const check = run.checks.find((c) => c.name === name);
    if (check === undefined || !check.pass) throw new Error(`guest check ${name} did not pass:\n${run.output.slice(-3000)}`);
    const match = /^(\d+)(e-2)? /.exec(check.detail);
    if (match === null) throw new Error(`cannot read ${name}: ${check.detail}`);
    return Number(match[1]) / (match[2] === undefined ? 1 : 100);
  };
  return { seqwrite: value('seqwrite'), seqread: value('seqread'), randread: value('randread') };
}

function waitForSocket(child: ChildProcess, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`qemu-storage-daemon exited (${code}): ${err}`)));
    const poll = (): void => {
      if (existsSync(path)) resolve();
      else setTimeout(poll, 50);
    };
    poll();
  });
}

/** One measurement of each path, in turn. */
async function measureAll(guest: GuestImages, dir: string, image: string): Promise<[string, Figures][]> {
  const figures: [string, Figures][] = [];
  const backend = await FileBackend.open(image);
  const server = new VhostUserServer(new VirtioBlk({ backend, queueSize: 1024 }), { socketPath: join(dir, 'ours.sock') });
  server.listen();
  try {
    figures.push(['ours', await measure(guest, { kind: 'vhost-user', socket: join(dir, 'ours.sock') })]);
  } finally {
    server.close();
    await backend.close();
  }
  const socket = join(dir, 'qsd.sock');
  const qsd = spawn('qemu-storage-daemon', [
    '--blockdev',
    `driver=file,node-name=file,filename=${image},cache.direct=off,aio=threads`,
    '--blockdev',
    'driver=raw,node-name=disk,file=file',
    '--export',
    `type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path=${socket},writable=on`,
  ]);
  try {
    await waitForSocket(qsd, socket);
    figures.push(['qsd', await measure(guest, { kind: 'vhost-user', socket })]);
  } finally {
    qsd.kill('SIGTERM');
  }
  figures.push(['builtin', await measure(guest, { kind: 'builtin', image })]);
  return figures;
}

async function main(): Promise<void> {
  for (const tool of ['qemu-system-x86_64', 'qemu-storage-daemon']) {
    if (findExecutable(tool) === undefined) {
      console.warn(`SKIP: the guest benchmark needs ${tool} (Debian packages qemu-system-x86 and qemu-system-common)`);
      return;
    }
  }
  const guest = await buildGuest({ progress: (line) => console.error(line) });
  const acceleration = detectAcceleration();
  console.error(`bench: QEMU accel ${acceleration.accel} (${acceleration.reason})`);
  const dir = mkdtempSync(join(tmpdir(), 'vhost-user-bench-'));
  const image = join(dir, 'disk.img');
  // Allocated up front, so that no path pays for the host file system allocating blocks on first write.
  writeFileSync(image, new Uint8Array(IMAGE_BYTES));
  const best = new Map<string, Figures>();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, f] of await measureAll(guest, dir, image)) {
        const b = best.get(name);
        best.set(name, b === undefined ? f : { seqwrite: Math.max(b.seqwrite, f.seqwrite), seqread: Math.max(b.seqread, f.seqread), randread: Math.max(b.randread, f.randread) });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const units: Record<keyof Figures, string> = { seqwrite: 'MiB/s', seqread: 'MiB/s', randread: 'IOPS' };
  const ours = best.get('ours') as Figures;
  for (const metric of ['seqwrite', 'seqread', 'randread'] as const) {
    for (const [name, figures] of best) console.log(`BENCH ${PKG} guest-${metric}/${name} ${figures[metric]} ${units[metric]}`);
    for (const other of ['qsd', 'builtin']) {
      const theirs = best.get(other) as Figures;
      console.log(`BENCH ${PKG} guest-${metric}/ours-vs-${other} ${(ours[metric] / theirs[metric]).toFixed(2)} x`);
    }
  }
}

await main();
