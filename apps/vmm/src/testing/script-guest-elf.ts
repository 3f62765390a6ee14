import { writeElf } from './elf-writer.js';
import { GUEST, buildScriptGuest, type Script } from './script-guest.js';

/** The script guest as an ELF "kernel" (the interpreter, its IDT and `script`), for booting through the Linux loader or the CLI. */
export function scriptGuestElf(script: Script): Uint8Array {
  const guest = buildScriptGuest();
  return writeElf(GUEST.code, [
    { address: GUEST.code, bytes: guest.code },
    { address: GUEST.idt, bytes: guest.idt },
    { address: GUEST.idtr, bytes: guest.idtr },
    { address: GUEST.script, bytes: script.encode() },
  ]);
}
