/** The byte the page-cache test writes at each image offset: reads are checked against it. */
export function patternByte(offset: number): number {
  return (offset * 7 + (offset >>> 12)) & 0xff;
}
