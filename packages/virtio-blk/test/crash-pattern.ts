/** Sectors each round of the crash test writes. */
export const ROUND_SECTORS = 64;

/** The 8 sectors a round writes at offset `i` (in sectors) of its area: unique per round and position. */
export function roundData(round: number, i: number): Uint8Array {
  const bytes = new Uint8Array(8 * 512);
  const v = new DataView(bytes.buffer);
  for (let at = 0; at < bytes.length; at += 8) {
    v.setUint32(at, round + 1, true);
    v.setUint32(at + 4, (i * 512 + at) ^ 0x5a5a5a5a, true);
  }
  return bytes;
}
