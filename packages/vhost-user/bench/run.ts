/**
 * Guest-side block I/O through three paths to the same raw image, in one run:
 * our vhost-user-blk back-end, qemu-storage-daemon's vhost-user-blk export,
 * and QEMU's built-in virtio-blk. Each boots the test guest (q35, split ring,
 * one queue) and runs, inside the guest:
 *   seqwrite / seqread: dd with bs=1M and O_DIRECT over 512 MiB;
 *   randread: 4 KiB O_DIRECT reads for 10 s, in runs of 64 sequential 4 KiB
 *     requests from a random 4 KiB-aligned offset (busybox dd per run; the
 *     guest has no fio), reported as requests per second.
 * The paths take turns for BENCH_ROUNDS rounds (default 5) and the median
 * counts, with the spread printed beside it: under TCG the emulated guest CPU
 * dominates and a shared machine adds noise that a single run cannot average.
 *
 * The two vhost-user back-ends also run as processes of their own, and their
 * CPU time (/proc/PID/stat) is sampled at each guest result line, giving the
 * back-end's host CPU per MiB and per request: the figure that is the
 * back-end's own, not the emulated guest's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest, detectAcceleration, findExecutable, qemuArgs, runGuest, type BuiltinDisk, type GuestImages, type VhostUserDisk } from '../src/qemu/index.js';

const PKG = '@virtio-ts/vhost-user';
const IMAGE_BYTES = 512 * 2 ** 20;
const SEQ_MIB = 512;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/**
 * The disk check first: it marks the end of boot. Then a warm-up that is not
 * counted (rw: 32 MiB of 1 MiB direct writes and reads, checksummed), so that
 * a freshly started back-end is measured warm: Node compiles the request path
 * with its optimising JIT during the first few hundred requests (about 100 ms
 * of CPU in the first 512 MiB of writes otherwise), a one-time cost a
 * long-running back-end pays once. All three paths get the same warm-up.
 */
const CHECKS = `vt.checks=disk:vda:${IMAGE_BYTES}:-,rw:vda:0:32,seqwrite:vda:${SEQ_MIB},seqread:vda:${SEQ_MIB},randread:vda:10`;
const METRICS = ['seqwrite', 'seqread', 'randread'] as const;
type Metric = (typeof METRICS)[number];
/** USER_HZ: /proc/PID/stat counts CPU time in these ticks on every Linux architecture Node runs on. */
const TICKS_PER_SECOND = 100;

interface Sample {
  /** MiB/s or IOPS, as the guest measured. */
  readonly rate: number;
  /** The back-end process's CPU seconds during the check, when the back-end is a process of its own. */
  readonly cpuSeconds?: number;
  /** MiB moved or requests done by the check. */
  readonly work: number;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5), utime and stime; the slice starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

async function measure(guest: GuestImages, disk: VhostUserDisk | BuiltinDisk, pid: number | undefined): Promise<Record<Metric, Sample>> {
  const cpuAt = new Map<string, number>();
  const run = await runGuest(qemuArgs({ machine: 'q35', guest, acceleration: detectAcceleration(), append: CHECKS, disks: [disk] }), {
    timeoutMs: 600_000,
    onLine: (line) => {
      const check = /VT-CHECK (\S+) /.exec(line);
      if (check !== null && pid !== undefined) cpuAt.set(check[1] as string, cpuSeconds(pid));
    },
  });
  const sample = (name: Metric, previous: string): Sample => {
    const check = run.checks.find((c) => c.name === name);
    if (check === undefined || !check.pass) throw new Error(`guest check ${name} did not pass:\n${run.output.slice(-3000)}`);
    const match = /^(\d+)(e-2)? \S+ \((\d+) /.exec(check.detail);
    if (match === null) throw new Error(`cannot read ${name}: ${check.detail}`);
    const rate = Number(match[1]) / (match[2] === undefined ? 1 : 100);
    const work = Number(match[3]);
    const end = cpuAt.get(name);
    const start = cpuAt.get(previous);
    return end === undefined || start === undefined ? { rate, work } : { rate, work, cpuSeconds: end - start };
  };
  const warmUp = run.checks.find((c) => c.name === 'rw');
  if (warmUp === undefined || !warmUp.pass) throw new Error(`the warm-up check did not pass: ${warmUp?.detail ?? 'missing'}`);
  return { seqwrite: sample('seqwrite', 'rw'), seqread: sample('seqread', 'seqwrite'), randread: sample('randread', 'seqread') };
}

function waitForSocket(child: ChildProcess, name: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${err}`)));
    const poll = (): void => {
      if (existsSync(path)) resolve();
      else setTimeout(poll, 50);
    };
    poll();
  });
}

async function withBackEnd<T>(name: string, argv: string[], socket: string, body: (pid: number) => Promise<T>): Promise<T> {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitForSocket(child, name, socket);
    return await body(child.pid as number);
  } finally {
    child.kill('SIGTERM');
    rmSync(socket, { force: true });
  }
}

type Path = 'ours' | 'qsd' | 'builtin';

/** One measurement of each path, in turn. */
async function measureAll(guest: GuestImages, dir: string, image: string): Promise<[Path, Record<Metric, Sample>][]> {
  const ours = join(dir, 'ours.sock');
  const qsd = join(dir, 'qsd.sock');
  const backendScript = fileURLToPath(new URL('./backend.ts', import.meta.url));
  return [
    ['ours', await withBackEnd('our back-end', [process.execPath, ...process.execArgv, backendScript, ours, image], ours, (pid) => measure(guest, { kind: 'vhost-user', socket: ours }, pid))],
    [
      'qsd',
      await withBackEnd(
        'qemu-storage-daemon',
        [
          'qemu-storage-daemon',
          '--blockdev',
          `driver=file,node-name=file,filename=${image},cache.direct=off,aio=threads`,
          '--blockdev',
          'driver=raw,node-name=disk,file=file',
          '--export',
          `type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path=${qsd},writable=on`,
        ],
        qsd,
        (pid) => measure(guest, { kind: 'vhost-user', socket: qsd }, pid),
      ),
    ],
    ['builtin', await measure(guest, { kind: 'builtin', image }, undefined)],
  ];
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const round2 = (value: number): number => Number(value.toFixed(2));

async function main(): Promise<void> {
  for (const tool of ['qemu-system-x86_64', 'qemu-storage-daemon']) {
    if (findExecutable(tool) === undefined) {
      console.warn(`SKIP: the guest benchmark needs ${tool} (Debian packages qemu-system-x86 and qemu-system-common)`);
      return;
    }
  }
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`BENCH_ROUNDS must be a positive integer, not ${process.env.BENCH_ROUNDS}`);
  const guest = await buildGuest({ progress: (line) => console.error(line) });
  const acceleration = detectAcceleration();
  console.error(`bench: QEMU accel ${acceleration.accel} (${acceleration.reason}), ${ROUNDS} rounds`);
  const dir = mkdtempSync(join(tmpdir(), 'vhost-user-bench-'));
  const image = join(dir, 'disk.img');
  // Allocated up front, so that no path pays for the host file system allocating blocks on first write.
  writeFileSync(image, new Uint8Array(IMAGE_BYTES));
  const samples = new Map<Path, Record<Metric, Sample>[]>();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      console.error(`bench: round ${round + 1}/${ROUNDS}`);
      for (const [path, figures] of await measureAll(guest, dir, image)) samples.set(path, [...(samples.get(path) ?? []), figures]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const units: Record<Metric, string> = { seqwrite: 'MiB/s', seqread: 'MiB/s', randread: 'IOPS' };
  const perWork: Record<Metric, string> = { seqwrite: 'us/MiB', seqread: 'us/MiB', randread: 'us/request' };
  for (const metric of METRICS) {
    const medians = new Map<Path, number>();
    for (const [path, runs] of samples) {
      const rates = runs.map((r) => r[metric].rate);
      medians.set(path, median(rates));
      console.log(`BENCH ${PKG} guest-${metric}/${path} ${round2(median(rates))} ${units[metric]} (min ${Math.min(...rates)}, max ${Math.max(...rates)})`);
      const cpu = runs.flatMap((r) => (r[metric].cpuSeconds === undefined ? [] : [(r[metric].cpuSeconds * 1e6) / r[metric].work]));
      if (cpu.length > 0) console.log(`BENCH ${PKG} backend-cpu-${metric}/${path} ${round2(median(cpu))} ${perWork[metric]}`);
    }
    const ours = medians.get('ours') as number;
    for (const other of ['qsd', 'builtin'] as const) console.log(`BENCH ${PKG} guest-${metric}/ours-vs-${other} ${(ours / (medians.get(other) as number)).toFixed(2)} x`);
  }
}

await main();
