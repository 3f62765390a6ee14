/**
 * The device's process for the crash test: a file-backed disk driven by a
 * guest in the same process. Each round writes ROUND_SECTORS sectors of a
 * pattern unique to the round, sends FLUSH, and once the FLUSH is used prints
 * `ACK <round>`, after a first line `PID <pid>` saying which process to kill.
 * It keeps going until it is killed.
 *
 * Usage: crash-child.ts <image>
 */
import { CoreTransport } from '@virtio-ts/driver';
import { GuestMemory } from '@virtio-ts/virtqueue';
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_OUT, VirtioBlk } from '../src/index.js';
import { FileBackend } from '../src/node/index.js';
import { BlkGuest } from './guest.js';
import { ROUND_SECTORS, roundData } from './crash-pattern.js';

const [path] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: crash-child.ts <image>');
process.stdout.write(`PID ${process.pid}\n`);
const backend = await FileBackend.open(path);
const blk = new VirtioBlk({ backend });
const guest = BlkGuest.start(new CoreTransport(GuestMemory.create(16 << 20), blk));
const rounds = Math.floor(blk.capacity / ROUND_SECTORS);
for (let round = 0; round < rounds; round++) {
  // Several writes in flight at once, then a FLUSH after all of them completed.
  const writes = [];
  for (let i = 0; i < ROUND_SECTORS; i += 8) {
    writes.push(guest.submit({ type: VIRTIO_BLK_T_OUT, sector: round * ROUND_SECTORS + i, out: roundData(round, i) }));
  }
  for (const w of await Promise.all(writes)) if (w.status !== VIRTIO_BLK_S_OK) throw new Error(`write failed in round ${round}`);
  const flush = await guest.submit({ type: VIRTIO_BLK_T_FLUSH });
  if (flush.status !== VIRTIO_BLK_S_OK) throw new Error(`flush failed in round ${round}`);
  process.stdout.write(`ACK ${round}\n`);
}
process.stdout.write('DONE\n');
