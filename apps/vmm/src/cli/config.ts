import { parseArgs } from 'node:util';
import type { TransportKind } from '../virtio/attach.js';

/** A device on the command line or in the config file. */
export interface DeviceConfig {
  /** The device type: a key of the device table (`blk`, ...). */
  readonly type: string;
  /** Which transport carries it. */
  readonly transport: TransportKind;
  /** The device's own options (for blk: path, ro, serial). */
  readonly options: Readonly<Record<string, string | boolean>>;
}

/** A complete VM description. */
export interface VmConfig {
  /** Path of the kernel to boot: a bzImage or an ELF vmlinux. */
  readonly kernel: string;
  /** Path of the initramfs, or undefined to boot without one. */
  readonly initrd: string | undefined;
  /** The kernel command line (default `console=ttyS0`). */
  readonly cmdline: string;
  /** Guest RAM in bytes. */
  readonly memory: number;
  /** Number of vCPUs, 1 to 255. */
  readonly cpus: number;
  /** The virtio devices, in the order they are attached. */
  readonly devices: readonly DeviceConfig[];
  /** Also write the console output to this file. */
  readonly consoleLog: string | undefined;
}

/** A mistake in the command line or config file; its message is one line for the user. */
export class ConfigError extends Error {
  /** Wraps `message`, which must say in one line what to change. */
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Parses a size such as 512M, 2G or 1073741824 (bytes). */
export function parseSize(text: string | number, what: string): number {
  if (typeof text === 'number') {
    if (Number.isSafeInteger(text) && text > 0) return text;
    throw new ConfigError(`${what} ${text} is not a positive number of bytes`);
  }
  const m = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  const unit = UNITS[(m?.[2] ?? '').toUpperCase()];
  if (m === null || unit === undefined) throw new ConfigError(`${what} "${text}" is not a size: use a number with K, M or G (e.g. 512M, 2G)`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new ConfigError(`${what} "${text}" is out of range`);
  return bytes;
}

/**
 * Parses a device option list such as `path=disk.img,transport=pci,ro`: keys
 * with values, and bare flags (true). `transport` defaults to pci.
 */
export function parseDeviceSpec(type: string, spec: string): DeviceConfig {
  const options: Record<string, string | boolean> = {};
  for (const part of spec.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (!/^[a-z][a-z0-9-]*$/.test(key)) throw new ConfigError(`--${type} ${spec}: "${key}" is not an option name`);
    if (key in options) throw new ConfigError(`--${type} ${spec}: option ${key} is given twice`);
    options[key] = eq < 0 ? true : part.slice(eq + 1);
  }
  const transport = options.transport ?? 'pci';
  delete options.transport;
  if (transport !== 'pci' && transport !== 'mmio') throw new ConfigError(`--${type} ${spec}: transport must be pci or mmio`);
  return { type, transport, options };
}

interface FileConfig {
  kernel?: unknown;
  initrd?: unknown;
  cmdline?: unknown;
  memory?: unknown;
  cpus?: unknown;
  consoleLog?: unknown;
  devices?: unknown;
}

function fileDevices(value: unknown, file: string): DeviceConfig[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(`${file}: "devices" must be an array`);
  return value.map((d: unknown, i) => {
    if (typeof d !== 'object' || d === null) throw new ConfigError(`${file}: devices[${i}] must be an object`);
    const { type, transport, ...rest } = d as Record<string, unknown>;
    if (typeof type !== 'string') throw new ConfigError(`${file}: devices[${i}].type must be a string such as "blk"`);
    const options: Record<string, string | boolean> = {};
    for (const [k, v] of Object.entries(rest)) {
      if (typeof v === 'string' || typeof v === 'boolean') options[k] = v;
      else if (typeof v === 'number') options[k] = String(v);
      else throw new ConfigError(`${file}: devices[${i}].${k} must be a string, number or boolean`);
    }
    const t = transport ?? 'pci';
    if (t !== 'pci' && t !== 'mmio') throw new ConfigError(`${file}: devices[${i}].transport must be "pci" or "mmio"`);
    return { type, transport: t, options };
  });
}

/**
 * Builds the VM config from `vmm run` arguments and, with `--config FILE`, a
 * JSON file of the same fields (command-line values win; devices add up).
 * `readText` reads the config file (injected for tests).
 */
export function parseRunArguments(argv: readonly string[], readText: (path: string) => string): VmConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string' },
        kernel: { type: 'string' },
        initrd: { type: 'string' },
        cmdline: { type: 'string' },
        memory: { type: 'string' },
        cpus: { type: 'string' },
        blk: { type: 'string', multiple: true },
        'console-log': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message.split('\n')[0] ?? 'bad arguments' : 'bad arguments');
  }
  const v = parsed.values;
  let file: FileConfig = {};
  if (v.config !== undefined) {
    let text: string;
    try {
      text = readText(v.config);
    } catch {
      throw new ConfigError(`config file ${v.config} cannot be read`);
    }
    try {
      file = JSON.parse(text) as FileConfig;
    } catch (error) {
      throw new ConfigError(`config file ${v.config} is not valid JSON: ${error instanceof Error ? error.message : ''}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new ConfigError(`config file ${v.config} must hold a JSON object`);
  }
  const name = v.config ?? 'config';
  const str = (flag: string | undefined, key: keyof FileConfig): string | undefined => {
    if (flag !== undefined) return flag;
    const value = file[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new ConfigError(`${name}: "${key}" must be a string`);
    return value;
  };
  const kernel = str(v.kernel, 'kernel');
  if (kernel === undefined) throw new ConfigError('no kernel: give --kernel FILE (a bzImage or vmlinux) or "kernel" in the config file');
  const memoryText = v.memory ?? (file.memory as string | number | undefined) ?? '512M';
  const memory = parseSize(memoryText, '--memory');
  const cpusValue = v.cpus ?? file.cpus ?? 1;
  const cpus = Number(cpusValue);
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255) throw new ConfigError(`--cpus ${String(cpusValue)} must be a whole number from 1 to 255`);
  const devices = [...fileDevices(file.devices, name), ...(v.blk ?? []).map((spec) => parseDeviceSpec('blk', spec))];
  return {
    kernel,
    initrd: str(v.initrd, 'initrd'),
    cmdline: str(v.cmdline, 'cmdline') ?? 'console=ttyS0',
    memory,
    cpus,
    devices,
    consoleLog: str(v['console-log'], 'consoleLog'),
  };
}
