import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The test guest's kernel and initramfs. */
export interface GuestImages {
  /** Path of Debian's stock kernel (linux-image-amd64), which QEMU boots with -kernel. */
  readonly kernel: string;
  /** Path of the initramfs (busybox, virtio modules and the /init that runs the checks), passed with -initrd. */
  readonly initrd: string;
}

/** The repository root, found from this file (src/qemu or dist/qemu of packages/vhost-user). */
export function repositoryRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** Path of the guest builder script (scripts/guest/build.sh in the repository). */
export function guestBuilderPath(): string {
  return join(repositoryRoot(), 'scripts', 'guest', 'build.sh');
}

/**
 * Builds the test guest if needed (scripts/guest/build.sh: Debian's stock
 * kernel and busybox, cached under .cache/guest) and returns its files. The
 * script's progress lines go to `progress`.
 */
export function buildGuest(options: { cacheDir?: string; progress?: (line: string) => void } = {}): Promise<GuestImages> {
  const script = guestBuilderPath();
  if (!existsSync(script)) return Promise.reject(new Error(`guest builder ${script} not found: run from a checkout of the repository`));
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', [script, ...(options.cacheDir === undefined ? [] : [options.cacheDir])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const lines = err.split('\n');
      err = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') options.progress?.(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const [kernel, initrd] = out.trim().split('\n').slice(-2);
      if (code !== 0 || kernel === undefined || initrd === undefined) {
        reject(new Error(`building the test guest failed (exit ${code}): ${err.trim() || 'see the lines above'}`));
        return;
      }
      resolvePromise({ kernel, initrd });
    });
  });
}
