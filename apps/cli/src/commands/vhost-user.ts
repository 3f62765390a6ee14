import { VhostUserServer } from '@virtio-ts/vhost-user';
import type { Command } from '../command.js';
import { openBlk } from '../devices/blk.js';
import { UsageError } from '../errors.js';
import { integerFlag, parseFlags } from '../options.js';

const BLK_USAGE = 'virtio-ts vhost-user blk --socket PATH --image FILE [--readonly] [--queues N] [--serial ID] [--verbose]';

/** The device types `vhost-user` serves, by name. */
const devices: Readonly<Record<string, (args: readonly string[]) => Promise<number>>> = {
  blk: serveBlk,
};

/** `virtio-ts vhost-user <device> ...`: serve a device to QEMU (or another front-end) over vhost-user. */
export const vhostUser: Command = {
  summary: `serve a device over vhost-user: ${BLK_USAGE.replace('virtio-ts vhost-user ', '')}`,
  run: async (args) => {
    const [name, ...rest] = args;
    const serve = name === undefined ? undefined : devices[name];
    if (serve === undefined) {
      throw new UsageError(`${name === undefined ? 'missing device' : `unknown device '${name}'`}; devices: ${Object.keys(devices).join(', ')} (usage: ${BLK_USAGE})`);
    }
    return serve(rest);
  },
};

async function serveBlk(args: readonly string[]): Promise<number> {
  const flags = parseFlags(
    args,
    {
      socket: { type: 'string' },
      image: { type: 'string' },
      readonly: { type: 'boolean' },
      queues: { type: 'string' },
      serial: { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    BLK_USAGE,
  );
  if (flags.help === true) {
    process.stdout.write(`usage: ${BLK_USAGE}\n`);
    return 0;
  }
  if (flags.socket === undefined) throw new UsageError(`--socket PATH is required (usage: ${BLK_USAGE})`);
  if (flags.image === undefined) throw new UsageError(`--image FILE is required (usage: ${BLK_USAGE})`);
  const queues = integerFlag('queues', flags.queues, 1, 1, 64);
  const blk = await openBlk({ image: flags.image, readOnly: flags.readonly === true, queues, ...(flags.serial === undefined ? {} : { serial: flags.serial }) });
  const log = (message: string): void => void process.stderr.write(`virtio-ts: ${message}\n`);
  const server = new VhostUserServer(blk.device, { socketPath: flags.socket, replaceStaleSocket: true, log, ...(flags.verbose === true ? { trace: log } : {}) });
  try {
    server.listen();
  } catch (error) {
    await blk.close();
    throw error;
  }
  log(`serving vhost-user-blk ${blk.describe} on ${flags.socket} (Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  server.close();
  await blk.close();
  return 0;
}
