import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { Kvm } from '../kvm/kvm.js';
import { ACPI_RESET_PORT, ACPI_RESET_VALUE, ACPI_SLEEP_CONTROL_PORT } from '../platform/layout.js';
import { kvmUnavailableReason } from '../testing/kvm-available.js';
import { GuestProgram } from '../testing/guest-program.js';
import { Script } from '../testing/script-guest.js';
import { scriptGuestElf } from '../testing/script-guest-elf.js';
import { ConfigError, parseDeviceSpec, parseRunArguments, parseSize } from './config.js';
import { EXIT, runVmmCli } from './run.js';
import { EscapeFilter } from './terminal.js';

const dir = mkdtempSync(join(tmpdir(), 'vmm-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('latin1');
    done();
  }
}

async function cli(argv: string[], input = new PassThrough(), stdout = new Capture()): Promise<{ code: number; stdout: string; stderr: string }> {
  const stderr = new Capture();
  const code = await runVmmCli(argv, { stdin: input, stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('vmm run arguments', () => {
  it('parses sizes with binary units and refuses anything else', () => {
    expect(parseSize('512M', 'm')).toBe(512 * 2 ** 20);
    expect(parseSize('2G', 'm')).toBe(2 * 2 ** 30);
    expect(parseSize('1GiB', 'm')).toBe(2 ** 30);
    expect(parseSize('4096', 'm')).toBe(4096);
    expect(parseSize(1024, 'm')).toBe(1024);
    for (const bad of ['', 'G', '1.5G', '-1M', '12Q', '0x100']) expect(() => parseSize(bad, '--memory')).toThrow(ConfigError);
  });

  it('parses device specs: options, flags, transport defaulting to pci', () => {
    expect(parseDeviceSpec('blk', 'path=disk.img,transport=mmio,ro')).toEqual({ type: 'blk', transport: 'mmio', options: { path: 'disk.img', ro: true } });
    expect(parseDeviceSpec('blk', 'path=a').transport).toBe('pci');
    expect(() => parseDeviceSpec('blk', 'path=a,transport=usb')).toThrow(/transport must be pci or mmio/);
    expect(() => parseDeviceSpec('blk', 'path=a,path=b')).toThrow(/given twice/);
  });

  it('merges a JSON config file with the command line (flags win, devices add up)', () => {
    const config = file(
      'vm.json',
      JSON.stringify({ kernel: 'k', cmdline: 'quiet', memory: '1G', cpus: 2, devices: [{ type: 'blk', path: 'a.img', transport: 'mmio', ro: true }] }),
    );
    const c = parseRunArguments(['--config', config, '--memory', '256M', '--blk', 'path=b.img'], (p) => readFileSync(p, 'utf8'));
    expect(c).toMatchObject({ kernel: 'k', cmdline: 'quiet', memory: 256 * 2 ** 20, cpus: 2 });
    expect(c.devices).toEqual([
      { type: 'blk', transport: 'mmio', options: { path: 'a.img', ro: true } },
      { type: 'blk', transport: 'pci', options: { path: 'b.img' } },
    ]);
  });

  it('passes Ctrl-A x as quit and Ctrl-A Ctrl-A as one Ctrl-A, across chunks', () => {
    const f = new EscapeFilter();
    expect(f.push(Uint8Array.of(0x61, 0x01))).toEqual({ forward: Uint8Array.of(0x61), quit: false });
    expect(f.push(Uint8Array.of(0x01, 0x62))).toEqual({ forward: Uint8Array.of(0x01, 0x62), quit: false });
    expect(f.push(Uint8Array.of(0x01, 0x63))).toEqual({ forward: Uint8Array.of(0x01, 0x63), quit: false });
    expect(f.push(Uint8Array.of(0x64, 0x01, 0x78, 0x65))).toEqual({ forward: Uint8Array.of(0x64), quit: true });
  });
});

describe('vmm errors are one line with a non-zero exit', () => {
  const notKernel = file('notes.txt', 'this is not a kernel\n'.repeat(100));
  const cases: [string, string[], RegExp][] = [
    ['no kernel given', ['run'], /^virtio-ts vmm: no kernel: give --kernel FILE/],
    ['a missing kernel file', ['run', '--kernel', join(dir, 'missing')], /^virtio-ts vmm: kernel .*missing: not found$/],
    ['a bad size', ['run', '--kernel', notKernel, '--memory', '1X'], /^virtio-ts vmm: --memory "1X" is not a size/],
    ['a bad cpu count', ['run', '--kernel', notKernel, '--cpus', 'two'], /^virtio-ts vmm: --cpus two must be a whole number/],
    ['an unknown option', ['run', '--kernel', notKernel, '--disk', 'x'], /^virtio-ts vmm: Unknown option '--disk'/],
    ['an unknown command', ['start'], /^virtio-ts vmm: unknown command "start"/],
    ['an unreadable config file', ['run', '--config', join(dir, 'nope.json')], /^virtio-ts vmm: config file .*nope\.json cannot be read$/],
  ];
  for (const [what, argv, message] of cases) {
    it(`for ${what}`, async () => {
      const { code, stderr } = await cli(argv);
      expect(code).toBe(EXIT.FAILURE);
      expect(stderr.trimEnd()).toMatch(message);
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    });
  }

  it('for a missing /dev/kvm, saying what to do', () => {
    expect(() => Kvm.open(join(dir, 'kvm'))).toThrow(/failed: ENOENT \(this host has no KVM: load the kvm module/);
  });

  const noKvm = kvmUnavailableReason();
  if (noKvm !== undefined) console.warn(`SKIP: CLI error cases that create a VM need KVM: ${noKvm}`);
  const kvmCases: [string, () => string[], RegExp][] = [
    ['a kernel that is neither bzImage nor ELF', () => ['run', '--kernel', notKernel], /^virtio-ts vmm: kernel is neither a bzImage nor an ELF vmlinux/],
    ['too little memory', () => ['run', '--kernel', notKernel, '--memory', '8M'], /^virtio-ts vmm: memory size 8388608 must be a multiple of 2 MiB and at least 16 MiB$/],
    ['a missing disk image', () => ['run', '--kernel', notKernel, '--blk', `path=${join(dir, 'none.img')}`], /^virtio-ts vmm: blk0: .*none\.img/],
    [
      'overlapping device addresses',
      () => {
        const disk = file('disk.img', new Uint8Array(1 << 16));
        return ['run', '--kernel', notKernel, '--blk', `path=${disk},transport=mmio,address=0xd0000000,ro`, '--blk', `path=${disk},transport=mmio,address=0xd0000000,ro`];
      },
      /^virtio-ts vmm: mmio blk1 \(virtio-mmio\) at 0xd0000000-0xd0000fff overlaps blk0 \(virtio-mmio\) at 0xd0000000-0xd0000fff$/,
    ],
    ['a device in the PCI window', () => ['run', '--kernel', notKernel, '--blk', `path=${file('d2.img', new Uint8Array(4096))},transport=mmio,address=0xc0000000`], /overlaps the PCI BAR window/],
  ];
  for (const [what, argv, message] of kvmCases) {
    it.skipIf(noKvm !== undefined)(`for ${what}`, async () => {
      const { code, stderr } = await cli(argv());
      expect(code).toBe(EXIT.FAILURE);
      expect(stderr.trimEnd()).toMatch(message);
      expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    });
  }
});

describe.skipIf(kvmUnavailableReason() !== undefined)('vmm run end to end', () => {
  it('boots a kernel image, shows its console, logs it to a file and exits 0 when the guest powers off', async () => {
    const kernel = file('guest.elf', scriptGuestElf(new Script().print('hello from vmm run').powerOff(ACPI_SLEEP_CONTROL_PORT)));
    const logPath = join(dir, 'console.log');
    const { code, stdout } = await cli(['run', '--kernel', kernel, '--memory', '64M', '--console-log', logPath]);
    expect(code).toBe(EXIT.POWEROFF);
    expect(stdout).toBe('hello from vmm run\n');
    expect(readFileSync(logPath, 'utf8')).toBe('hello from vmm run\n');
  });

  it('exits 2 when the guest resets the machine through the ACPI reset register', async () => {
    const kernel = file('reboot.elf', scriptGuestElf(new Script().out(1, ACPI_RESET_PORT, ACPI_RESET_VALUE)));
    const { code, stderr } = await cli(['run', '--kernel', kernel, '--memory', '64M']);
    expect(code).toBe(EXIT.REBOOT);
    expect(stderr).toBe('virtio-ts vmm: the guest rebooted\n');
  });

  it('forwards typed keys to the guest (the UART interrupts it) and quits on Ctrl-A x', async () => {
    const program = new GuestProgram()
      .enableApic()
      .routeIoapicPin(4, 0x24, false)
      .out(1, 0x3f9, 0x01)
      .print('type')
      .waitIrq(0x24, (p) => p.in(1, 0x3f8, 0x71))
      .print('got it');
    const kernel = file('echo.elf', scriptGuestElf(program.script));
    const input = new PassThrough();
    const stdout = new Capture();
    const running = cli(['run', '--kernel', kernel, '--memory', '64M'], input, stdout);
    input.write(Uint8Array.of(0x71));
    const watcher = setInterval(() => {
      if (stdout.text.includes('got it\n')) {
        clearInterval(watcher);
        input.write(Uint8Array.of(0x01, 0x78));
      }
    }, 20);
    const { code, stderr } = await running;
    clearInterval(watcher);
    expect(code).toBe(EXIT.STOPPED);
    expect(stdout.text.split('\n').slice(0, -1)).toEqual(program.expected);
    expect(stderr).toBe('virtio-ts vmm: stopped\n');
  });
});
