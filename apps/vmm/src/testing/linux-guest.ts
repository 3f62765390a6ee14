import { Machine, type MachineOutcome } from '../machine.js';
import { ConsoleWatcher } from './console-watcher.js';

/** One "VT-CHECK name PASS|FAIL detail" line printed by the test guest's /init (scripts/guest/init). */
export interface GuestCheck {
  /** The check's name, as /init calls it. */
  readonly name: string;
  /** True for PASS, false for FAIL. */
  readonly pass: boolean;
  /** The rest of the line: what the check saw. */
  readonly detail: string;
}

/** What to boot and which checks the guest runs. */
export interface LinuxGuestOptions {
  /** The kernel image (bzImage). */
  readonly kernel: Uint8Array;
  /** The initramfs whose /init runs the checks. */
  readonly initrd: Uint8Array;
  /** The checks, passed to /init as vt.checks= (for example `disk:vda:67108864:-`). */
  readonly checks: readonly string[];
  /** Guest RAM in bytes. */
  readonly memory: number;
  /** Number of vCPUs (Linux runs at most one virtio-blk request queue per CPU). */
  readonly cpus: number;
  /** Attaches the devices, between the machine's construction and its start. */
  readonly devices: (machine: Machine) => void;
  /** Stops the machine if the guest has not printed VT-DONE by then. */
  readonly timeoutMs: number;
}

/** What a boot of the test guest produced. */
export interface LinuxGuestRun {
  /** The checks, in the order the guest ran them. */
  readonly checks: GuestCheck[];
  /** The guest printed VT-DONE: every check ran. */
  readonly done: boolean;
  /** Everything the guest wrote to the console. */
  readonly output: string;
  /** How the machine ended ('stopped' when the timeout ran out). */
  readonly outcome: MachineOutcome;
  /** Milliseconds from before the machine was created until the guest's first VT-CHECK line, if there was one. */
  readonly firstCheckMs: number | undefined;
}

/**
 * Boots the test guest on a machine with the devices `options.devices`
 * attaches, waits until its /init has run every check and powered off (or
 * the timeout), and collects the results. The kernel command line matches
 * the one @virtio-ts/vhost-user's QEMU harness gives the same guest.
 */
export async function runLinuxGuest(options: LinuxGuestOptions): Promise<LinuxGuestRun> {
  const start = performance.now();
  const console = new ConsoleWatcher();
  const machine = new Machine({
    memory: options.memory,
    cpus: options.cpus,
    console: console.write,
    boot: { kind: 'linux', kernel: options.kernel, initrd: options.initrd, cmdline: `console=ttyS0 quiet panic=-1 vt.checks=${options.checks.join(',')}` },
  });
  options.devices(machine);
  machine.start();
  const firstCheck = console.waitFor('VT-CHECK ', options.timeoutMs, machine.outcome).then(
    () => performance.now() - start,
    () => undefined,
  );
  const done = await console.waitFor('VT-DONE', options.timeoutMs, machine.outcome).then(
    () => true,
    () => false,
  );
  const outcome = done ? await machine.outcome : await machine.stop();
  const checks = console.lines.flatMap((line): GuestCheck[] => {
    const check = /VT-CHECK (\S+) (PASS|FAIL) ?(.*)$/.exec(line);
    return check === null ? [] : [{ name: check[1] as string, pass: check[2] === 'PASS', detail: check[3] as string }];
  });
  return { checks, done, output: console.output, outcome, firstCheckMs: await firstCheck };
}
