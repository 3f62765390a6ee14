import { errnoName } from './libc.js';

/** A failed KVM or libc call: the operation, errno and its name. */
export class KvmError extends Error {
  /** The errno the call failed with. */
  readonly errno: number;

  /** Builds the error for `operation`, which failed with `errno`. */
  constructor(operation: string, errno: number, hint?: string) {
    super(`${operation} failed: ${errnoName(errno)}${hint === undefined ? '' : ` (${hint})`}`);
    this.name = 'KvmError';
    this.errno = errno;
  }
}
