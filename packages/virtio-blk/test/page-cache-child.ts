/**
 * The page-cache test's device side, run under strace: reads two ranges of
 * an image through the file backend, the first while it is in the page cache
 * (the parent just wrote it), the second after evicting it. Prints `PID`,
 * whether the eviction took (`EVICTED yes|no`, from mincore), and `READ
 * <offset> ok` for each read whose bytes match what the parent wrote.
 * Usage: page-cache-child.ts <image> <cached offset> <evicted offset> <length>
 */
import { open } from 'node:fs/promises';
import koffi from 'koffi';
import { FileBackend } from '../src/node/index.js';
import { patternByte } from './page-cache-pattern.js';

const [image, cachedArg, evictedArg, lengthArg] = process.argv.slice(2) as [string, string, string, string];
const cached = Number(cachedArg);
const evicted = Number(evictedArg);
const length = Number(lengthArg);

const libc = koffi.load('libc.so.6');
const posixFadvise = libc.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)');
const mmap = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)');
const munmap = libc.func('int munmap(void *addr, size_t length)');
const mincore = libc.func('int mincore(void *addr, size_t length, _Out_ uint8_t *vec)');
const POSIX_FADV_DONTNEED = 4;
const PROT_READ = 1;
const MAP_SHARED = 1;
const PAGE = 4096;

/** Whether any page of the range is still in the page cache. */
function resident(fd: number, offset: number, bytes: number): boolean {
  const at = mmap(null, bytes, PROT_READ, MAP_SHARED, fd, offset) as unknown;
  const pages = new Uint8Array(Math.ceil(bytes / PAGE));
  if ((mincore(at, bytes, pages) as number) !== 0) throw new Error(`mincore failed: errno ${koffi.errno()}`);
  munmap(at, bytes);
  return pages.some((p) => (p & 1) === 1);
}

async function readChecked(backend: FileBackend, offset: number): Promise<void> {
  const buffer = new Uint8Array(length);
  await backend.read(offset, [buffer]);
  const ok = buffer.every((b, i) => b === patternByte(offset + i));
  console.log(`READ ${offset} ${ok ? 'ok' : 'mismatch'}`);
}

console.log(`PID ${process.pid}`);
const backend = await FileBackend.open(image, { lock: false });
await readChecked(backend, cached);
// The pages are clean (the parent's writes were synced), so DONTNEED drops them.
const other = await open(image, 'r');
// The whole file: DONTNEED drops only folios wholly inside the range, and the page cache keeps large folios.
posixFadvise(other.fd, 0, 0, POSIX_FADV_DONTNEED);
console.log(`EVICTED ${resident(other.fd, evicted, length) ? 'no' : 'yes'}`);
await other.close();
await readChecked(backend, evicted);
await backend.close();
