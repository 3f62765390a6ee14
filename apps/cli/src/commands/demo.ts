import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VhostUserServer } from '@virtio-ts/vhost-user';
import { buildGuest, detectAcceleration, findExecutable, qemuArgs, repositoryRoot } from '@virtio-ts/vhost-user/qemu';
import { hostVirtualization, runVmmCli } from '@virtio-ts/vmm';
import type { Command } from '../command.js';
import { openBlk } from '../devices/blk.js';
import { UsageError } from '../errors.js';
import { parseFlags } from '../options.js';

const USAGE = 'virtio-ts demo [--image FILE]';
const DEMO_DISK_BYTES = 256 * 2 ** 20;

/**
 * `virtio-ts demo`: boots a stock Debian kernel with a virtio-ts disk and
 * drops the user into the guest's shell with the disk mounted: on the
 * virtio-ts VMM where the host has hardware virtualization, otherwise under
 * QEMU with the disk served by our vhost-user-blk back-end. The first boot
 * formats the disk.
 */
export const demo: Command = {
  summary: `boot a Linux guest in QEMU with a virtio-ts disk mounted, and open its shell: ${USAGE}`,
  run: async (args) => {
    const flags = parseFlags(args, { image: { type: 'string' }, help: { type: 'boolean' } }, USAGE);
    if (flags.help === true) {
      process.stdout.write(`usage: ${USAGE}\n`);
      return 0;
    }
    if (findExecutable('qemu-system-x86_64') === undefined) {
      throw new UsageError('qemu-system-x86_64 is not installed: run bash scripts/setup.sh (Debian package qemu-system-x86)');
    }
    const say = (line: string): void => void process.stderr.write(`virtio-ts: ${line}\n`);
    const guest = await buildGuest({ progress: say });
    const image = flags.image ?? join(repositoryRoot(), '.cache', 'demo', 'disk.img');
    if (!existsSync(image)) {
      mkdirSync(join(image, '..'), { recursive: true });
      writeFileSync(image, '');
      truncateSync(image, DEMO_DISK_BYTES);
      say(`created ${image} (${DEMO_DISK_BYTES / 2 ** 20} MiB; the guest formats it on first boot)`);
    }
    if (hostVirtualization().hardware) {
      // With hardware virtualization the guest runs on our own VMM, its disk a virtio-ts device in the same process.
      say('booting on the virtio-ts VMM (KVM); quit with Ctrl-A x, or poweroff in the guest');
      return runVmmCli([
        'run',
        ...['--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '512M'],
        ...['--cmdline', 'console=ttyS0 quiet panic=-1 vt.mode=demo vt.backend=vmm'],
        ...['--blk', `path=${image},transport=pci,serial=virtio-ts-demo`],
      ]);
    }
    const blk = await openBlk({ image, readOnly: false, queues: 1, serial: 'virtio-ts-demo' });
    const dir = mkdtempSync(join(tmpdir(), 'virtio-ts-demo-'));
    const socketPath = join(dir, 'blk.sock');
    const server = new VhostUserServer(blk.device, { socketPath, log: (m) => { if (m.startsWith('DEVICE_NEEDS_RESET')) say(m); } });
    server.listen();
    const acceleration = detectAcceleration();
    say(`disk ${blk.describe} served over vhost-user at ${socketPath}`);
    say(`starting QEMU (${acceleration.accel}: ${acceleration.reason}); quit with Ctrl-A X, or 'poweroff' in the guest`);
    const qemu = qemuArgs({ machine: 'q35', guest, acceleration, append: 'vt.mode=demo vt.backend=vhost-user', disks: [{ kind: 'vhost-user', socket: socketPath }] });
    try {
      return await new Promise<number>((resolve, reject) => {
        const child = spawn('qemu-system-x86_64', qemu, { stdio: 'inherit' });
        child.on('error', reject);
        child.on('close', (code) => resolve(code ?? 1));
      });
    } finally {
      server.close();
      await blk.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
