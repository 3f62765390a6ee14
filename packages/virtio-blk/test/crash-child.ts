/**
 * The device's process for the crash test: a file-backed disk driven by a
 * guest in the same process. Each round writes ROUND_SECTORS sectors of a
 * pattern unique to the round, sends FLUSH, and once the FLUSH is used prints
 * `ACK <round>`, after a first line `PID <pid>` saying which process to kill.
 * It keeps going until it is killed.
 *
 * Usage: crash-child.ts <image>
 */
import { CoreTransport, VirtioDriver } from '@virtio-ts/driver';
import { GuestMemory, featureBit } from '@virtio-ts/virtqueue';
import { VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_OUT, VirtioBlk } from '../src/index.js';
import { FileBackend } from '../src/node/index.js';
import { header } from './setup.js';
import { ROUND_SECTORS, roundData } from './crash-pattern.js';

const [path] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: crash-child.ts <image>');
process.stdout.write(`PID ${process.pid}\n`);
const backend = await FileBackend.open(path);
const blk = new VirtioBlk({ backend });
const driver = new VirtioDriver(new CoreTransport(GuestMemory.create(16 << 20), blk));
await driver.init({ features: featureBit(VIRTIO_BLK_F_FLUSH) });
const queue = driver.queue(0);
/** One request, Linux's framing (header, data, status in separate buffers); resolves to its status byte. */
const submit = async (type: number, sector: number, data?: Uint8Array): Promise<number | undefined> =>
  (await queue.request(data === undefined ? [header(type, sector)] : [header(type, sector), data], [1])).data[0];
const rounds = Math.floor(blk.capacity / ROUND_SECTORS);
for (let round = 0; round < rounds; round++) {
  // Several writes in flight at once, then a FLUSH after all of them completed.
  const writes = [];
  for (let i = 0; i < ROUND_SECTORS; i += 8) {
    writes.push(submit(VIRTIO_BLK_T_OUT, round * ROUND_SECTORS + i, roundData(round, i)));
  }
  for (const status of await Promise.all(writes)) if (status !== VIRTIO_BLK_S_OK) throw new Error(`write failed in round ${round}`);
  if ((await submit(VIRTIO_BLK_T_FLUSH, 0)) !== VIRTIO_BLK_S_OK) throw new Error(`flush failed in round ${round}`);
  process.stdout.write(`ACK ${round}\n`);
}
process.stdout.write('DONE\n');
