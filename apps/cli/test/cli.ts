import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { repositoryRoot } from '@virtio-ts/vhost-user/qemu';

const root = repositoryRoot();
const entry = ['--conditions=@virtio-ts/source', '--import', 'tsx', 'apps/cli/src/main.ts'];

/** Runs `virtio-ts args` from source to completion. */
export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [...entry, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A long-running `virtio-ts` process whose stderr lines can be awaited. */
export class CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  private readonly waiters: (() => void)[] = [];
  private pending = '';
  private exited = false;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [...entry, ...args], { cwd: root });
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.pending += chunk.toString();
      const lines = this.pending.split('\n');
      this.pending = lines.pop() ?? '';
      this.lines.push(...lines);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child.on('exit', () => {
      this.exited = true;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Resolves once `count` lines (from line `from` on) match `pattern`; rejects if the process exits first. */
  async waitFor(pattern: RegExp, count = 1, from = 0): Promise<void> {
    for (;;) {
      if (this.lines.slice(from).filter((l) => pattern.test(l)).length >= count) return;
      if (this.exited) throw new Error(`virtio-ts exited before printing ${pattern}:\n${this.lines.join('\n')}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Kills the process with `signal` and resolves once it is gone. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill(signal);
    await gone;
  }
}
