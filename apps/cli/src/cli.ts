import type { Command } from './command.js';
import { demo } from './commands/demo.js';
import { vhostUser } from './commands/vhost-user.js';
import { vmm } from './commands/vmm.js';
import { UsageError } from './errors.js';

/** The subcommands, by name. Adding one is one import and one line here. */
export const commands: Readonly<Record<string, Command>> = {
  'vhost-user': vhostUser,
  vmm,
  demo,
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return ['usage: virtio-ts <command> [options]', '', 'commands:', ...lines, '', "Run 'virtio-ts <command> --help' for a command's options."].join('\n');
}

/**
 * Runs `virtio-ts` with `args` (without the program name) and resolves with
 * the exit status. Errors are printed as one line on stderr: 2 for a usage
 * mistake, 1 for anything else.
 */
export async function runCli(args: readonly string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  try {
    if (command === undefined) throw new UsageError(`unknown command '${name}'; commands: ${Object.keys(commands).join(', ')}`);
    return await command.run(rest);
  } catch (error) {
    process.stderr.write(`virtio-ts: ${error instanceof Error ? error.message : String(error)}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}
