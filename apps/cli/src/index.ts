export { runCli, commands } from './cli.js';
export type { Command } from './command.js';
export { UsageError } from './errors.js';
