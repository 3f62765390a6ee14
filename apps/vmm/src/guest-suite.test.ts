import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BLK_RING_FEATURES, MemoryBackend, VirtioBlk } from '@virtio-ts/virtio-blk';
import { READ_ONLY_SERIAL, RW_EXTENT, blockSuiteChecks, buildGuest } from '@virtio-ts/vhost-user/qemu';
import { VIRTIO_F_RING_PACKED, featureBit } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { hostVirtualization } from './kvm/kvm.js';
import { runLinuxGuest, type LinuxGuestRun } from './testing/linux-guest.js';
import { attachVirtio, type TransportKind } from './virtio/attach.js';

/**
 * The guest suite of the vhost-user path (packages/vhost-user/test/guest.test.ts:
 * Debian's stock kernel and a busybox initramfs whose /init runs the checks
 * named on the command line, scripts/guest), run against this VMM: every
 * combination of transport, ring layout and queue count, each boot with a
 * read-write disk and a read-only one, running the same checks
 * (blockSuiteChecks). A full Linux boot needs hardware virtualization: where
 * guest ring-0 code is emulated (kvm_pvm) the emulator lacks instructions
 * Linux uses at boot, so the suite is skipped there, loudly.
 */
const host = hostVirtualization();
const skip = !host.kvm ? 'no /dev/kvm' : !host.hardware ? `no hardware virtualization (${host.pvm ? '/dev/kvm is kvm_pvm' : 'no vmx/svm'}): a stock kernel's ring-0 code would run in an instruction emulator that lacks instructions Linux uses at boot (XRSTOR, POPCNT were hit)` : undefined;
if (skip !== undefined) console.warn(`SKIP: @virtio-ts/vmm full-Linux guest suite: ${skip}`);

const DISK_BYTES = 64 * 1024 * 1024;
const BOOT_BOUND_MS = 300_000;

/** Every check ran and passed; on failure the message carries the guest's output. */
function expectPassed(run: LinuxGuestRun, names: string[]): void {
  const context = `guest output:\n${run.output.slice(-4000)}`;
  expect(run.checks.filter((c) => !c.pass), context).toEqual([]);
  expect(run.checks.map((c) => c.name), context).toEqual(names);
  expect(run.done, context).toBe(true);
  expect(run.outcome, context).toEqual({ kind: 'poweroff' });
}

const matrix = (['pci', 'mmio'] as const).flatMap((transport: TransportKind) =>
  [false, true].flatMap((packed) => [1, 2].map((queues) => ({ transport, packed, queues }))),
);

describe.skipIf(skip !== undefined)('the guest suite on this VMM', () => {
  let guest: Promise<{ kernel: Uint8Array; initrd: Uint8Array }> | undefined;
  const images = (): Promise<{ kernel: Uint8Array; initrd: Uint8Array }> =>
    (guest ??= buildGuest({ progress: (line) => console.log(line) }).then((g) => ({ kernel: readFileSync(g.kernel), initrd: readFileSync(g.initrd) })));

  for (const row of matrix) {
    it(
      `virtio-blk on ${row.transport}, ${row.packed ? 'packed' : 'split'} rings, ${row.queues} queue(s): finds the disk, writes, reads back, flushes, discards; a read-only disk refuses writes`,
      async () => {
        const tag = `${row.transport}-${row.packed ? 'p' : 's'}${row.queues}`;
        const ringFeatures = row.packed ? BLK_RING_FEATURES : BLK_RING_FEATURES & ~featureBit(VIRTIO_F_RING_PACKED);
        const rw = new MemoryBackend(DISK_BYTES);
        const ro = new MemoryBackend(DISK_BYTES, { readOnly: true });
        const logs: string[] = [];
        const log = (message: string): void => void logs.push(message);
        const run = await runLinuxGuest({
          ...(await images()),
          memory: 512 * 1024 * 1024,
          // Linux runs one request queue per CPU at most.
          cpus: row.queues,
          checks: blockSuiteChecks({ diskBytes: DISK_BYTES, serial: `vt-${tag}`, queues: row.queues, packed: row.packed }),
          devices: (machine) => {
            attachVirtio(machine, row.transport, new VirtioBlk({ backend: rw, serial: `vt-${tag}`, queues: row.queues, ringFeatures }), 'vda', log);
            attachVirtio(machine, row.transport, new VirtioBlk({ backend: ro, serial: READ_ONLY_SERIAL, readOnly: true, ringFeatures }), 'vdb', log);
          },
          timeoutMs: BOOT_BOUND_MS,
        });
        expectPassed(run, ['disk', 'queues', 'packed', 'rw', 'flush', 'discard', 'disk', 'readonly']);
        // The data the guest wrote and read back is in the disk's image, at the offset it wrote to.
        const written = rw.bytes.subarray(RW_EXTENT.offsetMib * 2 ** 20, (RW_EXTENT.offsetMib + RW_EXTENT.mib) * 2 ** 20);
        expect(run.checks.find((c) => c.name === 'rw')?.detail).toBe(`md5 ${createHash('md5').update(written).digest('hex')}`);
        expect(ro.bytes.every((b) => b === 0)).toBe(true);
        expect(logs.filter((l) => l.includes('refused') || l.includes('NEEDS_RESET'))).toEqual([]);
      },
      BOOT_BOUND_MS + 60_000,
    );
  }
});
