import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { Machine, type MachineOutcome } from '../machine.js';
import { attachVirtio } from '../virtio/attach.js';
import { ConfigError, parseRunArguments, type VmConfig } from './config.js';
import { DEVICES, type BuiltDevice } from './devices.js';
import { EscapeFilter } from './terminal.js';

/** Where the CLI reads and writes; `process` by default. */
export interface CliIo {
  /** Console input for the guest's UART; put in raw mode while the VM runs when it is a terminal. */
  readonly stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  /** Console output: what the guest writes to its UART, and the usage text of `vmm help`. */
  readonly stdout: Writable;
  /** The VMM's own status lines and error messages. */
  readonly stderr: Writable;
}

/** Exit codes of `vmm run`. */
export const EXIT = {
  /** The guest powered off. */
  POWEROFF: 0,
  /** The VMM could not start the guest, or the guest crashed. */
  FAILURE: 1,
  /** The guest rebooted (the VMM exits rather than restarting it). */
  REBOOT: 2,
  /** The user quit with Ctrl-A x or a signal. */
  STOPPED: 3,
} as const;

const USAGE = `usage: virtio-ts vmm run --kernel FILE [options]
       virtio-ts vmm run --config vm.json [options]

Boots a Linux kernel (bzImage or vmlinux) on KVM with virtio-ts devices.

options:
  --kernel FILE         bzImage or ELF vmlinux
  --initrd FILE         initramfs
  --cmdline TEXT        kernel command line (default "console=ttyS0")
  --memory SIZE         guest RAM, e.g. 512M or 2G (default 512M)
  --cpus N              vCPUs (default 1)
${Object.values(DEVICES)
  .map((d) => `  ${d.usage}`)
  .join('\n')}
                        mmio devices also take address=0x... (default: the next slot)
  --console-log FILE    also write the guest console to FILE
  --config FILE         JSON with the same fields: kernel, initrd, cmdline, memory, cpus,
                        consoleLog, devices: [{ "type": "blk", "path": ..., "transport": "mmio" }]

The console is the terminal: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.
Exit status: 0 guest powered off, 2 guest rebooted, 3 stopped by the user, 1 failure.
`;

/**
 * The `vmm` command line: `run` boots a VM and wires the terminal to its
 * console; `help` prints usage. Resolves with the exit status. Every error
 * is one line on stderr.
 */
export async function runVmmCli(argv: readonly string[], io: CliIo = process): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    io.stdout.write(USAGE);
    return command === undefined ? EXIT.FAILURE : EXIT.POWEROFF;
  }
  if (command !== 'run') {
    io.stderr.write(`virtio-ts vmm: unknown command "${command}" (try: virtio-ts vmm run --kernel FILE, or virtio-ts vmm help)\n`);
    return EXIT.FAILURE;
  }
  try {
    return await run(parseRunArguments(rest, (path) => readFileSync(path, 'utf8')), io);
  } catch (error) {
    io.stderr.write(`virtio-ts vmm: ${oneLine(error)}\n`);
    return EXIT.FAILURE;
  }
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`${what} ${path}: ${code === 'ENOENT' ? 'not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : oneLine(error)}`);
  }
}

function parseAddress(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${name}: address=${String(value)} is not a number`);
  return n;
}

async function run(config: VmConfig, io: CliIo): Promise<number> {
  const kernel = readInput(config.kernel, 'kernel');
  const initrd = config.initrd === undefined ? undefined : readInput(config.initrd, 'initrd');
  const built: BuiltDevice[] = [];
  let log: WriteStream | undefined;
  let machine: Machine | undefined;
  const terminal = io.stdin.isTTY === true && io.stdin.setRawMode !== undefined;
  const onInput = (chunk: Buffer): void => {
    const { forward, quit } = filter.push(chunk);
    if (forward.length > 0) machine?.consoleInput(forward);
    if (quit) void machine?.stop();
  };
  const filter = new EscapeFilter();
  const onSignal = (): void => void machine?.stop();
  try {
    if (config.consoleLog !== undefined) log = createWriteStream(config.consoleLog, { flags: 'a' });
    machine = new Machine({
      memory: config.memory,
      cpus: config.cpus,
      boot: { kind: 'linux', kernel, cmdline: config.cmdline, ...(initrd === undefined ? {} : { initrd }) },
      console: (bytes) => {
        io.stdout.write(bytes);
        log?.write(bytes);
      },
      log: (message) => io.stderr.write(`virtio-ts vmm: ${message}\n`),
    });
    const counts = new Map<string, number>();
    for (const d of config.devices) {
      const factory = DEVICES[d.type];
      if (factory === undefined) throw new ConfigError(`unknown device type "${d.type}" (known: ${Object.keys(DEVICES).join(', ')})`);
      const n = counts.get(d.type) ?? 0;
      counts.set(d.type, n + 1);
      const name = `${d.type}${n}`;
      const { address, ...options } = d.options;
      if (address !== undefined && d.transport !== 'mmio') throw new ConfigError(`${name}: address= applies to mmio devices only`);
      const device = await factory.create(options, name);
      built.push(device);
      attachVirtio(machine, d.transport, device.device, name, (m) => io.stderr.write(`virtio-ts vmm: ${m}\n`), parseAddress(address, name));
    }
    machine.start();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    io.stdin.on('data', onInput);
    if (terminal) io.stdin.setRawMode?.(true);
    io.stdin.resume();
    const outcome = await machine.outcome;
    return report(outcome, io);
  } catch (error) {
    await machine?.stop();
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    io.stdin.off('data', onInput);
    if (terminal) io.stdin.setRawMode?.(false);
    io.stdin.pause();
    await Promise.all(built.map((d) => d.close()));
    if (log !== undefined) await new Promise<void>((resolve) => log?.end(resolve));
  }
}

function report(outcome: MachineOutcome, io: CliIo): number {
  switch (outcome.kind) {
    case 'poweroff':
      return EXIT.POWEROFF;
    case 'reboot':
      io.stderr.write('virtio-ts vmm: the guest rebooted\n');
      return EXIT.REBOOT;
    case 'stopped':
      io.stderr.write('virtio-ts vmm: stopped\n');
      return EXIT.STOPPED;
    case 'crash':
      io.stderr.write(`virtio-ts vmm: the guest crashed: ${outcome.message}\n`);
      return EXIT.FAILURE;
  }
}
