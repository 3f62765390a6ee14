import { spawn } from 'node:child_process';
import type { GuestImages } from './guest.js';
import type { Acceleration } from './host.js';

/** QEMU machines the guest tests use: virtio-pci on pc and q35, virtio-mmio on microvm. */
export type Machine = 'pc' | 'q35' | 'microvm';

/** A disk served by a vhost-user back-end (ours, or qemu-storage-daemon's export). */
export interface VhostUserDisk {
  /** Discriminates the disk kinds: attached as vhost-user-blk(-pci) over `socket`. */
  readonly kind: 'vhost-user';
  /** The back-end's socket. */
  readonly socket: string;
  /** Request queues (num-queues). Default 1. */
  readonly queues?: number;
  /** Use packed rings. Default false. */
  readonly packed?: boolean;
  /** Reconnect every this many seconds after the back-end goes away (chardev reconnect=). Default: no reconnection. */
  readonly reconnectSeconds?: number;
}

/** A disk QEMU serves itself with its built-in virtio-blk. */
export interface BuiltinDisk {
  /** Discriminates the disk kinds: QEMU's own virtio-blk(-pci) over a raw `image`. */
  readonly kind: 'builtin';
  /** Raw image file. */
  readonly image: string;
  /** Request queues (num-queues). Default 1. */
  readonly queues?: number;
  /** Use packed rings. Default false. */
  readonly packed?: boolean;
  /** Device ID string the guest reads with VIRTIO_BLK_T_GET_ID. Default: none. */
  readonly serial?: string;
}

/** Everything needed to start the guest. */
export interface QemuOptions {
  /** The QEMU machine type, which picks the transport: virtio-pci or virtio-mmio. */
  readonly machine: Machine;
  /** The kernel and initramfs to boot. */
  readonly guest: GuestImages;
  /** Kernel command line additions (vt.checks=..., vt.mode=demo). */
  readonly append: string;
  /** The disks, in the order the guest enumerates them (vda, vdb, ...). */
  readonly disks: readonly (VhostUserDisk | BuiltinDisk)[];
  /** KVM or TCG, as detectAcceleration() chose for this host. */
  readonly acceleration: Acceleration;
  /** Guest RAM in MiB. Default 256. */
  readonly memoryMiB?: number;
  /** Virtual CPUs. Default 1. Linux uses at most one virtio-blk queue per CPU. */
  readonly cpus?: number;
}

/**
 * microvm has no HPET or ACPI PM timer, so under TCG the kernel can neither
 * calibrate the TSC nor verify the IO-APIC timer and hangs at boot; give it
 * the TSC rate and skip the check.
 */
const MICROVM_CMDLINE = 'tsc_early_khz=2000000 no_timer_check';

const onOff = (value: boolean | undefined): string => (value === true ? 'on' : 'off');

/**
 * The qemu-system-x86_64 arguments for a guest with `options.disks`. Guest
 * RAM is a shared memfd (memory-backend-memfd, share=on), which vhost-user
 * needs so that the back-end can map it.
 */
export function qemuArgs(options: QemuOptions): string[] {
  const memory = options.memoryMiB ?? 256;
  const mmio = options.machine === 'microvm';
  const args = [
    '-machine',
    `${options.machine},memory-backend=mem`,
    '-accel',
    options.acceleration.accel,
    '-m',
    `${memory}M`,
    '-smp',
    String(options.cpus ?? 1),
    '-object',
    `memory-backend-memfd,id=mem,size=${memory}M,share=on`,
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-serial',
    'mon:stdio',
    '-no-reboot',
    '-kernel',
    options.guest.kernel,
    '-initrd',
    options.guest.initrd,
    '-append',
    `console=ttyS0 quiet panic=-1 ${mmio ? `${MICROVM_CMDLINE} ` : ''}${options.append}`,
  ];
  // QEMU's virtio-mmio defaults to the legacy (version 1) interface, which has no VERSION_1 and so no packed rings.
  if (mmio) args.push('-global', 'virtio-mmio.force-legacy=false');
  options.disks.forEach((disk, i) => {
    const queues = disk.queues ?? 1;
    if (disk.kind === 'vhost-user') {
      const reconnect = disk.reconnectSeconds === undefined ? '' : `,reconnect=${disk.reconnectSeconds}`;
      args.push('-chardev', `socket,id=vu${i},path=${disk.socket}${reconnect}`);
      args.push('-device', `${mmio ? 'vhost-user-blk' : 'vhost-user-blk-pci'},chardev=vu${i},num-queues=${queues},packed=${onOff(disk.packed)}`);
    } else {
      args.push('-drive', `file=${disk.image},if=none,id=d${i},format=raw,cache.direct=off,aio=threads`);
      const serial = disk.serial === undefined ? '' : `,serial=${disk.serial}`;
      args.push('-device', `${mmio ? 'virtio-blk-device' : 'virtio-blk-pci'},drive=d${i},num-queues=${queues},packed=${onOff(disk.packed)}${serial}`);
    }
  });
  return args;
}

/** One "VT-CHECK name PASS|FAIL detail" line of the guest. */
export interface CheckResult {
  /** The check's name, as the guest's /init calls it. */
  readonly name: string;
  /** True for PASS, false for FAIL. */
  readonly pass: boolean;
  /** The rest of the line: what the check saw. */
  readonly detail: string;
}

/** What a guest run produced. */
export interface GuestRun {
  /** The checks, in the order the guest ran them. */
  readonly checks: CheckResult[];
  /** The guest printed VT-DONE: every check ran. */
  readonly done: boolean;
  /** Everything QEMU printed (serial console and its own messages). */
  readonly output: string;
  /** QEMU's exit code, or null when it was killed (timeout or a failed pause handler). */
  readonly exitCode: number | null;
}

/** How to run the guest. */
export interface RunOptions {
  /** Kill QEMU after this long. */
  readonly timeoutMs: number;
  /** The guest printed "VT-PAUSE tag": do something, then the guest continues. */
  readonly onPause?: (tag: string) => Promise<void>;
  /** Each line of output, as it comes. */
  readonly onLine?: (line: string) => void;
}

/** Runs QEMU with `args` until it exits (the guest powers off after its checks) and collects the results. */
export function runGuest(args: readonly string[], options: RunOptions): Promise<GuestRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const checks: CheckResult[] = [];
    let output = '';
    let pending = '';
    let done = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    const line = (text: string): void => {
      options.onLine?.(text);
      const check = /VT-CHECK (\S+) (PASS|FAIL) ?(.*)$/.exec(text);
      if (check !== null) checks.push({ name: check[1] as string, pass: check[2] === 'PASS', detail: check[3] as string });
      if (text.includes('VT-DONE')) done = true;
      const pause = /VT-PAUSE (\S+)/.exec(text);
      if (pause !== null) {
        const resume = options.onPause?.(pause[1] as string) ?? Promise.resolve();
        resume.then(
          () => child.stdin.write('\n'),
          (error: unknown) => {
            output += `\nhost: pause handler failed: ${String(error)}\n`;
            child.kill('SIGKILL');
          },
        );
      }
    };
    const take = (chunk: Buffer): void => {
      const text = chunk.toString('latin1');
      output += text;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) line(l.replace(/\r$/, ''));
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      if (pending !== '') line(pending);
      resolve({ checks, done, output, exitCode });
    });
  });
}
