import { VirtioBlk } from '@virtio-ts/virtio-blk';
import { FileBackend, ImageError } from '@virtio-ts/virtio-blk/node';
import type { VirtioDevice } from '@virtio-ts/virtqueue';
import { ConfigError, type DeviceConfig } from './config.js';

/** A device the CLI built, with what to release when the VM ends. */
export interface BuiltDevice {
  /** The device, ready to attach to a transport. */
  readonly device: VirtioDevice;
  /** Releases what the device holds (an image file's descriptor); called once the VM has stopped. */
  close(): Promise<void>;
}

/** How the CLI builds one device type from its options. */
export interface DeviceFactory {
  /** One line for `vmm help`. */
  readonly usage: string;
  /** Builds the device; throws {@link ConfigError} for bad options. */
  create(options: DeviceConfig['options'], name: string): Promise<BuiltDevice>;
}

function flag(value: string | boolean | undefined, what: string): boolean {
  if (value === undefined || value === false || value === 'false' || value === 'off') return false;
  if (value === true || value === 'true' || value === 'on') return true;
  throw new ConfigError(`${what} must be on or off`);
}

function checkKnown(options: DeviceConfig['options'], known: readonly string[], name: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new ConfigError(`${name}: unknown option "${key}" (known: ${known.join(', ')}, transport)`);
  }
}

/** The devices `vmm run` can attach, by type. Each goes on either transport. */
export const DEVICES: Readonly<Record<string, DeviceFactory>> = {
  blk: {
    usage: '--blk path=FILE[,transport=pci|mmio][,ro][,serial=ID]   a virtio-blk disk backed by FILE',
    async create(options, name) {
      checkKnown(options, ['path', 'ro', 'serial'], name);
      const path = options.path;
      if (typeof path !== 'string' || path === '') throw new ConfigError(`${name}: give the disk image as path=FILE`);
      const readOnly = flag(options.ro, `${name}: ro`);
      let backend: FileBackend;
      try {
        backend = await FileBackend.open(path, { readOnly });
      } catch (error) {
        throw new ConfigError(`${name}: ${error instanceof ImageError ? error.message : `disk image ${path}: ${error instanceof Error ? error.message : String(error)}`}`);
      }
      const serial = options.serial;
      const device = new VirtioBlk({ backend, readOnly, ...(typeof serial === 'string' ? { serial } : {}) });
      return { device, close: () => backend.close() };
    },
  },
};
