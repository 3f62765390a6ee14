/** Ctrl-A, the escape key (as in QEMU's -nographic console). */
export const ESCAPE = 0x01;
/** After the escape key: x quits. */
const QUIT = 0x78;

/**
 * Splits what the user types into bytes for the guest and the escape
 * sequence: Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A followed
 * by anything else sends both bytes. State carries across chunks.
 */
export class EscapeFilter {
  private pendingEscape = false;

  /** Filters one chunk; returns the bytes for the guest and whether the user asked to quit. */
  push(chunk: Uint8Array): { forward: Uint8Array; quit: boolean } {
    const out: number[] = [];
    for (const byte of chunk) {
      if (this.pendingEscape) {
        this.pendingEscape = false;
        if (byte === QUIT) return { forward: Uint8Array.from(out), quit: true };
        if (byte !== ESCAPE) out.push(ESCAPE);
        out.push(byte);
      } else if (byte === ESCAPE) {
        this.pendingEscape = true;
      } else {
        out.push(byte);
      }
    }
    return { forward: Uint8Array.from(out), quit: false };
  }
}
