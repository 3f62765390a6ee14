import { MemoryBackend, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from '@virtio-ts/virtio-blk';
import { DeviceId } from '@virtio-ts/virtqueue';
import { afterEach, describe, expect, it } from 'vitest';
import type { Machine } from '../machine.js';
import { ACPI_SLEEP_CONTROL_PORT } from '../platform/layout.js';
import { GuestProgram } from '../testing/guest-program.js';
import { kvmUnavailableReason } from '../testing/kvm-available.js';
import { startScriptGuest } from '../testing/run-script-guest.js';
import { GUEST } from '../testing/script-guest.js';
import { checkUsed, mmioGuestTransport, offerChain, pciGuestTransport, type GuestTransport, type SplitQueueLayout } from '../testing/virtio-guest.js';
import { attachVirtio, type AttachedDevice, type TransportKind } from './attach.js';

const noKvm = kvmUnavailableReason();
if (noKvm !== undefined) console.warn(`SKIP: in-guest virtio tests need KVM: ${noKvm}`);

const running: Machine[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((m) => m.stop()));
});

const QUEUE: SplitQueueLayout = { size: 8, desc: GUEST.free, avail: GUEST.free + 0x1000, used: GUEST.free + 0x2000 };
const HEADER = GUEST.free + 0x3000;
const DATA = GUEST.free + 0x4000;
const STATUS = GUEST.free + 0x5000;
const HEADER2 = GUEST.free + 0x6000;
const DATA2 = GUEST.free + 0x7000;
const STATUS2 = GUEST.free + 0x8000;

function guestTransport(device: AttachedDevice): GuestTransport {
  if (device.kind === 'pci') return pciGuestTransport(device, 0x40, 0x41);
  return mmioGuestTransport(device.transport.description.baseAddress, device.transport.description.interrupt, 0x30);
}

describe.skipIf(noKvm !== undefined)('virtio-blk driven from inside the guest', () => {
  for (const kind of ['mmio', 'pci'] as const satisfies readonly TransportKind[]) {
    it(`reads and writes sectors through ${kind}: registers, split ring in guest RAM, ioeventfd kick, interrupt`, async () => {
      const disk = new Uint8Array(64 * 1024);
      disk.set([0xef, 0xbe, 0xad, 0xde, 0x78, 0x56, 0x34, 0x12], 0);
      const backend = new MemoryBackend(disk);
      let attached: AttachedDevice | undefined;
      const program = new GuestProgram();
      const { machine, console } = startScriptGuest(
        (m) => {
          attached = attachVirtio(m, kind, new VirtioBlk({ backend }), 'disk0');
          const t = guestTransport(attached);
          const offeredHigh = Number(attached.transport.core.offeredFeatures >> 32n) & 0xffff_ffff;
          program.enableApic();
          t.initialise(program, DeviceId.BLOCK, offeredHigh);
          t.setupQueue(program, 0, QUEUE);
          t.driverOk(program);
          // Request 1: read sector 0 (spec 5.2.6: header, data, status).
          program.write(4, HEADER, VIRTIO_BLK_T_IN).write(4, HEADER + 4, 0).write(8, HEADER + 8, 0).write(1, STATUS, 0xff);
          offerChain(program, QUEUE, 0, 0, [
            { address: HEADER, length: 16, writable: false },
            { address: DATA, length: 512, writable: true },
            { address: STATUS, length: 1, writable: true },
          ]);
          t.kick(program, 0);
          program.waitFor(2, QUEUE.used + 2, 1, t.queueVector, (p) => t.acknowledge(p));
          checkUsed(program, QUEUE, 0, 0, 513);
          program.read(1, STATUS, VIRTIO_BLK_S_OK).read(8, DATA, 0x12345678_deadbeefn);
          // Request 2: write sector 1 with bytes the guest stores.
          program.write(4, HEADER2, VIRTIO_BLK_T_OUT).write(4, HEADER2 + 4, 0).write(8, HEADER2 + 8, 1).write(1, STATUS2, 0xff);
          program.write(8, DATA2, 0x0123_4567_89ab_cdefn).write(8, DATA2 + 504, 0xfeed_face_cafe_f00dn);
          offerChain(program, QUEUE, 3, 1, [
            { address: HEADER2, length: 16, writable: false },
            { address: DATA2, length: 512, writable: false },
            { address: STATUS2, length: 1, writable: true },
          ]);
          t.kick(program, 0);
          program.waitFor(2, QUEUE.used + 2, 2, t.queueVector, (p) => t.acknowledge(p));
          checkUsed(program, QUEUE, 1, 3, 1);
          program.read(1, STATUS2, VIRTIO_BLK_S_OK).print('done').powerOff(ACPI_SLEEP_CONTROL_PORT);
          return program.script;
        },
      );
      running.push(machine);
      expect(await machine.outcome).toEqual({ kind: 'poweroff' });
      expect(console.lines).toEqual(program.expected);
      const sector1 = new DataView(backend.bytes.buffer, 512, 512);
      expect(sector1.getBigUint64(0, true)).toBe(0x0123_4567_89ab_cdefn);
      expect(sector1.getBigUint64(504, true)).toBe(0xfeed_face_cafe_f00dn);
      // The guest driver made no mistake the status machine had to ignore.
      expect(attached?.transport.core.violations).toEqual({ status: 0, features: 0, config: 0, notify: 0, queue: 0 });
    });
  }
});
