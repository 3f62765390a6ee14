export { Assembler, CC, R, type Reg } from './x86-asm.js';
export { FIRST_VECTOR, GUEST, OP, SCRIPT_GUEST_MIN_MEMORY, Script, VECTOR_COUNT, buildScriptGuest } from './script-guest.js';
export { ConsoleWatcher } from './console-watcher.js';
export { startScriptGuest, type ScriptGuestRun } from './run-script-guest.js';
export { kvmUnavailableReason } from './kvm-available.js';
export { writeElf } from './elf-writer.js';
export { scriptGuestElf } from './script-guest-elf.js';
export { GuestProgram, LAPIC } from './guest-program.js';
export { checkUsed, mmioGuestTransport, offerChain, pciGuestTransport, type GuestBuffer, type GuestTransport, type SplitQueueLayout } from './virtio-guest.js';
