/**
 * The write-batch test's device side, run under strace: a lone write, then
 * WRITES writes started in the same event-loop turn, through the file
 * backend; then reads the image back with plain fs and checks every byte.
 * Prints `PID <pid>` and `VERIFY ok|mismatch`.
 * Usage: write-batch-child.ts <image> threads|native
 */
import { readFile } from 'node:fs/promises';
import { FileBackend } from '../src/node/index.js';
import { BATCH_STRIDE, WRITES, WRITE_BYTES, writeData } from './write-batch-pattern.js';

const [image, aio] = process.argv.slice(2) as [string, 'threads' | 'native'];
console.log(`PID ${process.pid}`);
const backend = await FileBackend.open(image, { lock: false, aio });
// A guest-memory-like buffer: every write's data is a view into it, as the device's are.
const memory = new Uint8Array((WRITES + 1) * WRITE_BYTES);
for (let i = 0; i <= WRITES; i++) memory.set(writeData(i), i * WRITE_BYTES);
const view = (i: number): Uint8Array => memory.subarray(i * WRITE_BYTES, (i + 1) * WRITE_BYTES);
await backend.write(0, [view(0)]);
// Two views per write: the iovecs must carry scattered buffers.
await Promise.all(Array.from({ length: WRITES }, (_, i) => backend.write((i + 1) * BATCH_STRIDE, [view(i + 1).subarray(0, 512), view(i + 1).subarray(512)])));
await backend.close();
const bytes = await readFile(image);
let ok = bytes.subarray(0, WRITE_BYTES).equals(writeData(0));
for (let i = 1; i <= WRITES; i++) ok &&= bytes.subarray(i * BATCH_STRIDE, i * BATCH_STRIDE + WRITE_BYTES).equals(writeData(i));
console.log(`VERIFY ${ok ? 'ok' : 'mismatch'}`);
