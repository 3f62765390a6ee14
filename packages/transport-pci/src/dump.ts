/**
 * Configuration space as `lspci -x` prints it: a line naming the function,
 * then 16 bytes per line in hex, each prefixed with its offset; `lspci -F`
 * reads the format back, so pciutils can decode a function's capabilities.
 *
 * @param address bus address, "bb:dd.f" or "dddd:bb:dd.f"
 * @param config configuration space, e.g. from `PciTransport.configSpace()`; bytes beyond it print as 0
 * @param length bytes to print: 64 (`-x`), 256 (`-xxx`) or 4096 (`-xxxx`)
 * @param description the rest of the first line (lspci prints class and name there)
 */
export function formatLspciDump(address: string, config: Uint8Array, length: 64 | 256 | 4096, description = 'Virtio device'): string {
  const bytes = new Uint8Array(length);
  bytes.set(config.subarray(0, length));
  const lines = [`${address} ${description}`];
  for (let offset = 0; offset < length; offset += 16) {
    const hex = Array.from(bytes.subarray(offset, offset + 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
    lines.push(`${offset.toString(16).padStart(offset >= 0x100 ? 3 : 2, '0')}: ${hex}`);
  }
  return `${lines.join('\n')}\n`;
}
