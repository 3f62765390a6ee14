/**
 * Reads an `strace -f -y -xx` log into the system calls the crash and
 * page-cache tests need to see: reads, writes and syncs on the image, which
 * thread made them, and the lines the device's process printed. With -xx every string and path is hex-escaped, so no argument
 * contains the parentheses or brackets the parser splits on.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One completed system call, in the order strace saw it enter and return. */
export interface TracedCall {
  /** The thread that made the call (the process ID for its main thread). */
  readonly pid: number;
  readonly name: string;
  /** The path (or pipe) strace printed for the first argument, a descriptor, decoded. */
  readonly target: string;
  /** The arguments after the descriptor, as printed. */
  readonly args: string;
  readonly result: number;
  /** The errno name of a failed call (`EAGAIN`), else undefined. */
  readonly error: string | undefined;
  /** Line numbers of the entry and the return in the log: the order of events. */
  readonly entry: number;
  readonly exit: number;
}

/** Whether strace can trace a process here (it is installed and ptrace is allowed). */
export function straceWorks(): boolean {
  const probe = spawnSync('strace', ['-o', '/dev/null', 'true'], { stdio: 'ignore' });
  return probe.error === undefined && probe.status === 0;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Runs the test script `child` (in this folder) with `args` under `strace -f`,
 * tracing `syscalls`, in `dir`; throws if it fails. Returns what it printed and
 * the calls strace saw on `image`.
 */
export async function traceChild(dir: string, child: string, args: readonly string[], syscalls: readonly string[], image: string): Promise<{ out: string; calls: TracedCall[] }> {
  const traceFile = join(dir, 'strace.log');
  const run = spawnSync(
    'strace',
    ['-f', '-y', '-xx', '-s', '32', '-qq', '-e', `trace=${syscalls.join(',')}`, '-o', traceFile, process.execPath, '--conditions=@virtio-ts/source', '--import', 'tsx', join(here, child), ...args],
    { cwd: join(here, '..'), encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`${child} failed (${run.status ?? run.signal}): ${run.stderr.trim()}`);
  return { out: run.stdout, calls: parseTrace(await readFile(traceFile, 'utf8')).filter((c) => c.target === image) };
}

const CALL = /^(\d+)\s+(\w+)\((\d+)<([^>]*)>(.*)$/;
/** io_submit, whose first argument is an AIO context, not a descriptor. */
const SUBMIT = /^(\d+)\s+(io_submit)\((.*)$/;
/** One struct iocb as strace prints it. */
const IOCB = /aio_lio_opcode=IOCB_CMD_(\w+), aio_fildes=\d+<([^>]*)>.*?aio_offset=(\d+)/g;
const RESUMED = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$/;
const UNFINISHED = ' <unfinished ...>';
/** The end of a completed call: `) = result`, padded with spaces to a column, and for a failure `ENAME (text)`. */
const RETURN = /\)\s+=\s+(-?\d+)(?: (E[A-Z0-9]+) \([^)]*\))?[^)]*$/;

/** A call strace saw enter, before its return. */
type StartedCall = Omit<TracedCall, 'result' | 'error' | 'exit'>;

/** The completed calls in `log`; entries without a return (the process was killed) are left out. */
export function parseTrace(log: string): TracedCall[] {
  const calls: TracedCall[] = [];
  const open = new Map<string, StartedCall>();
  /** A completed call, or for io_submit one call per iocb: `io_submit:<opcode>` with the offset as its argument, result 1 if submitted. */
  const complete = (started: StartedCall, result: number, error: string | undefined, exit: number): void => {
    if (started.name !== 'io_submit') {
      calls.push({ ...started, result, error, exit });
      return;
    }
    [...started.args.matchAll(IOCB)].forEach(([, opcode, path, offset], i) => {
      calls.push({ ...started, name: `io_submit:${(opcode as string).toLowerCase()}`, target: unhex(path as string), args: offset as string, result: i < result ? 1 : -1, error, exit });
    });
  };
  /** The call a line starts (io_submit, or a call on a descriptor), or undefined. */
  const entered = (line: string, n: number): StartedCall | undefined => {
    const submit = SUBMIT.exec(line);
    if (submit !== null) {
      const [, pid, name, rest] = submit as unknown as [string, string, string, string];
      return { pid: Number(pid), name, target: '', args: rest, entry: n };
    }
    const call = CALL.exec(line);
    if (call === null) return undefined;
    const [, pid, name, , target, rest] = call as unknown as [string, string, string, string, string, string];
    return { pid: Number(pid), name, target: unhex(target), args: rest, entry: n };
  };
  log.split('\n').forEach((line, n) => {
    const started = entered(line, n);
    if (started !== undefined) {
      if (started.args.endsWith(UNFINISHED)) {
        open.set(String(started.pid), { ...started, args: started.args.slice(0, -UNFINISHED.length) });
        return;
      }
      const end = RETURN.exec(started.args);
      if (end !== null) complete({ ...started, args: started.args.slice(0, end.index) }, Number(end[1]), end[2], n);
      return;
    }
    const resumed = RESUMED.exec(line);
    if (resumed === null) return;
    const [, pid, name, rest] = resumed as unknown as [string, string, string, string];
    const pending = open.get(pid);
    const end = RETURN.exec(rest);
    if (pending === undefined || pending.name !== name || end === null) return;
    open.delete(pid);
    complete({ ...pending, args: pending.args + rest.slice(0, end.index) }, Number(end[1]), end[2], n);
  });
  return calls.sort((a, b) => a.exit - b.exit);
}

/** The offset of a positional write: the last argument (pwrite64, pwritev, an io_submit iocb; pwritev2 prints its flags after it). */
export function writeOffset(call: TracedCall): number {
  const parts = call.args.split(', ');
  const last = call.name === 'pwritev2' ? parts[parts.length - 2] : parts[parts.length - 1];
  return Number(last);
}

/** The text of a write(2) whose buffer strace printed as hex (`"\x41\x43..."`). */
export function writtenText(call: TracedCall): string {
  const quoted = /"((?:\\x[0-9a-f]{2})*)"/.exec(call.args);
  return quoted === null ? '' : unhex(quoted[1] ?? '');
}

/** Decodes strace's `\xNN` escapes. */
function unhex(escaped: string): string {
  return escaped.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
