/**
 * Our vhost-user-blk back-end as a process of its own, so that the benchmark
 * can read its CPU time from /proc exactly as it reads qemu-storage-daemon's.
 * Arguments: SOCKET IMAGE. Stops on SIGTERM.
 */
import { VirtioBlk } from '@virtio-ts/virtio-blk';
import { FileBackend } from '@virtio-ts/virtio-blk/node';
import { VhostUserServer } from '../src/index.js';

const [socketPath, image] = process.argv.slice(2);
if (socketPath === undefined || image === undefined) throw new Error('usage: backend.ts SOCKET IMAGE');
const backend = await FileBackend.open(image);
const server = new VhostUserServer(new VirtioBlk({ backend, queueSize: 1024 }), { socketPath });
server.listen();
process.once('SIGTERM', () => {
  server.close();
  void backend.close().then(() => process.exit(0));
});
