/**
 * Opens an image with the file backend where koffi cannot be loaded, twice
 * (no lock is taken), zeroes a range with unmap and discards another, and
 * prints what it saw as JSON. Run by file-backend.test.ts.
 *
 * Usage: node --import tsx --import ./hide-koffi.mjs no-koffi-child.ts <image>
 */
import { readFile } from 'node:fs/promises';
import { FileBackend } from '../src/node/index.js';

const [path] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: no-koffi-child.ts <image>');
const backend = await FileBackend.open(path);
const second = await FileBackend.open(path);
await backend.writeZeroes(4096, 8192, true);
await backend.discard(65536, 4096);
await backend.flush();
const bytes = new Uint8Array(await readFile(path));
process.stdout.write(
  JSON.stringify({
    canUnmap: backend.canUnmap,
    zeroed: bytes.subarray(4096, 4096 + 8192).every((b) => b === 0),
    around: [bytes[4095], bytes[4096 + 8192]],
    discardedKept: bytes.subarray(65536, 65536 + 4096).some((b) => b !== 0),
  }),
);
await second.close();
await backend.close();
