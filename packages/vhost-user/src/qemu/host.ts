import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Whether QEMU can use KVM here, and why (not). */
export interface Acceleration {
  /** 'kvm' on hosts with hardware virtualization, 'tcg' (QEMU's instruction translator) elsewhere. */
  readonly accel: 'kvm' | 'tcg';
  /** One line saying why. */
  readonly reason: string;
}

/**
 * Picks KVM only where the CPU really has hardware virtualization: the vmx or
 * svm flag, an accessible /dev/kvm, and not the paravirtual kvm_pvm module,
 * which runs a stock kernel's privileged code in an instruction emulator
 * (minutes per boot) — TCG boots the same kernel in seconds there.
 */
export function detectAcceleration(): Acceleration {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return { accel: 'tcg', reason: 'no /proc/cpuinfo' };
  }
  if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(flags)) return { accel: 'tcg', reason: 'the CPU has no vmx or svm flag' };
  if (existsSync('/sys/module/kvm_pvm')) return { accel: 'tcg', reason: '/dev/kvm is the paravirtual kvm_pvm, which emulates guest kernel code' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible' };
  }
  return { accel: 'kvm', reason: 'hardware virtualization and /dev/kvm are available' };
}

/** Absolute path of `name` on PATH, or undefined. */
export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}
