/**
 * The write-error test's device side: the file size limit (RLIMIT_FSIZE) is
 * lowered to LIMIT, then three writes start in the same event-loop turn (one
 * AIO batch): one inside the limit, one across it (the kernel writes the part
 * below it and returns a short count; the rest then fails), one past it
 * (EFBIG). Prints `WRITE <offset> ok` or `WRITE <offset> <error code>` for
 * each, in order.
 * Usage: write-error-child.ts <image>
 */
import koffi from 'koffi';
import { FileBackend } from '../src/node/index.js';
import { LIMIT, WRITE_BYTES, errorWrites } from './write-error-pattern.js';

const [image] = process.argv.slice(2) as [string];
const RLIMIT_FSIZE = 1;
const setrlimit = koffi.load('libc.so.6').func('int setrlimit(int resource, uint64_t *limit)');
// Crossing the limit raises SIGXFSZ, whose default action ends the process; with a handler the write fails with EFBIG.
process.on('SIGXFSZ', () => undefined);
if ((setrlimit(RLIMIT_FSIZE, new BigUint64Array([BigInt(LIMIT), BigInt(LIMIT)])) as number) !== 0) throw new Error(`setrlimit failed: errno ${koffi.errno()}`);
const backend = await FileBackend.open(image, { lock: false, aio: 'native' });
const data = new Uint8Array(WRITE_BYTES).fill(0xa5);
const outcomes = await Promise.allSettled(errorWrites.map((offset) => backend.write(offset, [data])));
outcomes.forEach((outcome, i) => {
  const code = outcome.status === 'fulfilled' ? 'ok' : String((outcome.reason as { code?: unknown }).code);
  console.log(`WRITE ${errorWrites[i]} ${code}`);
});
await backend.close();
