import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MemoryBackend, VirtioBlk } from '@virtio-ts/virtio-blk';
import { afterAll, describe, expect, it } from 'vitest';
import { hostVirtualization } from './kvm/kvm.js';
import { Machine } from './machine.js';
import { ConsoleWatcher } from './testing/console-watcher.js';
import { attachVirtio } from './virtio/attach.js';

/**
 * The guest suite of the vhost-user path (scripts/guest: Debian's stock
 * kernel and a busybox initramfs whose /init runs the checks named on the
 * command line), run against this VMM for each device on both transports.
 * A full Linux boot needs hardware virtualization; where guest ring-0 code is
 * emulated it takes many minutes, so the suite is skipped there, loudly.
 */
const host = hostVirtualization();
const skip = !host.kvm ? 'no /dev/kvm' : !host.hardware ? `no hardware virtualization (${host.pvm ? '/dev/kvm is kvm_pvm' : 'no vmx/svm'}): a full Linux boot would take many minutes` : undefined;
if (skip !== undefined) console.warn(`SKIP: @virtio-ts/vmm full-Linux guest suite: ${skip}`);

const DISK_BYTES = 64 * 1024 * 1024;
const SUITE_BOUND_MS = 300_000;

describe.skipIf(skip !== undefined)('the guest suite on this VMM', () => {
  const work = mkdtempSync(join(tmpdir(), 'vmm-guest-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  let guest: { kernel: Uint8Array; initrd: Uint8Array } | undefined;
  const build = (): { kernel: Uint8Array; initrd: Uint8Array } => {
    if (guest !== undefined) return guest;
    const script = resolve(import.meta.dirname, '../../../scripts/guest/build.sh');
    const lines = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n');
    const [kernel, initrd] = lines.slice(-2);
    guest = { kernel: readFileSync(kernel as string), initrd: readFileSync(initrd as string) };
    return guest;
  };

  for (const transport of ['pci', 'mmio'] as const) {
    it(
      `virtio-blk on ${transport}: size and serial, O_DIRECT read-back, flush`,
      async () => {
        const { kernel, initrd } = build();
        const serial = `vt-${transport}`;
        const checks = [`disk:vda:${DISK_BYTES}:${serial}`, 'rw:vda:1:8', 'flush:vda'];
        const console = new ConsoleWatcher();
        const machine = new Machine({
          memory: 512 * 1024 * 1024,
          cpus: 2,
          console: console.write,
          boot: { kind: 'linux', kernel, initrd, cmdline: `console=ttyS0 quiet vt.checks=${checks.join(',')}` },
        });
        attachVirtio(machine, transport, new VirtioBlk({ backend: new MemoryBackend(DISK_BYTES), serial }), 'disk0');
        machine.start();
        await console.waitFor('VT-DONE', SUITE_BOUND_MS, machine.outcome);
        expect(await machine.outcome).toEqual({ kind: 'poweroff' });
        const results = console.lines.filter((l) => l.startsWith('VT-CHECK '));
        expect(results.map((l) => l.split(' ').slice(1, 3).join(' '))).toEqual(checks.map((c) => `${c.split(':')[0] ?? ''} PASS`));
      },
      SUITE_BOUND_MS + 60_000,
    );
  }
});
