import { Machine, type MachineOptions } from '../machine.js';
import { ConsoleWatcher } from './console-watcher.js';
import { GUEST, SCRIPT_GUEST_MIN_MEMORY, buildScriptGuest, type Script } from './script-guest.js';

/** A running script guest. */
export interface ScriptGuestRun {
  /** The machine running the guest. */
  readonly machine: Machine;
  /** The guest's COM1 output. */
  readonly console: ConsoleWatcher;
}

/**
 * Creates a machine that boots the script interpreter with `script`.
 * `setup` runs before the vCPUs start (to add devices); the script may be a
 * function of what `setup` returned (device addresses).
 */
export function startScriptGuest(
  script: Script | ((machine: Machine) => Script),
  options: Partial<Omit<MachineOptions, 'boot' | 'console'>> & { setup?: (machine: Machine) => void } = {},
): ScriptGuestRun {
  const console = new ConsoleWatcher();
  const guest = buildScriptGuest();
  const machine = new Machine({
    memory: options.memory ?? SCRIPT_GUEST_MIN_MEMORY * 2,
    cpus: options.cpus ?? 1,
    console: console.write,
    ...(options.log === undefined ? {} : { log: options.log }),
    ...(options.gsiInjection === undefined ? {} : { gsiInjection: options.gsiInjection }),
    boot: { kind: 'raw', images: [], entry: GUEST.code },
  });
  try {
    options.setup?.(machine);
    const s = typeof script === 'function' ? script(machine) : script;
    machine.memory.write(GUEST.code, guest.code);
    machine.memory.write(GUEST.idt, guest.idt);
    machine.memory.write(GUEST.idtr, guest.idtr);
    machine.memory.write(GUEST.script, s.encode());
    machine.start();
  } catch (error) {
    void machine.stop();
    throw error;
  }
  return { machine, console };
}
