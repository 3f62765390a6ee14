import { accessSync, constants } from 'node:fs';

/** Why KVM tests cannot run on this host, or undefined when /dev/kvm is usable. */
export function kvmUnavailableReason(path = '/dev/kvm'): string | undefined {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${path} does not exist (no KVM on this host)` : `${path} is not accessible (${code ?? 'error'})`;
  }
}
