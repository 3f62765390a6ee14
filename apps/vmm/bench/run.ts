/**
 * VMM benchmarks. Prints `BENCH @virtio-ts/vmm <case> <value> <unit>` lines.
 *
 * - mmio-exit-round-trip / pio-exit-round-trip: a guest loop of N reads of a
 *   virtio-mmio register (MagicValue, through the MMIO bus and the transport)
 *   or of a port, minus the same loop reading RAM, divided by N: one exit from
 *   KVM_RUN in the vCPU thread to the device on the main thread and back.
 * - mmio-dispatch: the main thread's part alone (bus lookup and transport
 *   register read), without KVM.
 * - rss-overhead: the process's resident memory minus the guest RAM that is
 *   resident, with a 512 MiB guest running; and node-baseline-rss, the same
 *   process before the machine existed.
 * - Boot time and guest dd throughput against QEMU need hardware
 *   virtualization and print a SKIP line where there is none.
 */
import { readFileSync } from 'node:fs';
import { MemoryBackend, VirtioBlk } from '@virtio-ts/virtio-blk';
import { Bus, type BusDevice } from '../src/bus/bus.js';
import { hostVirtualization } from '../src/kvm/kvm.js';
import { Machine } from '../src/machine.js';
import { ACPI_SLEEP_CONTROL_PORT } from '../src/platform/layout.js';
import { kvmUnavailableReason } from '../src/testing/kvm-available.js';
import { Assembler, CC, R } from '../src/testing/x86-asm.js';
import { attachMmio } from '../src/virtio/attach.js';

const PKG = '@virtio-ts/vmm';
const quick = process.argv.includes('--quick');
const EXITS = quick ? 5_000 : 20_000;
const CODE = 0x10_0000;
const RAM_TARGET = 0x20_0000;
const MARK_PORT = 0x510;
const TIMING_PORT = 0x511;

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${PKG} ${name} ${Number(value.toFixed(2))} ${unit}`);
}

type Target = { kind: 'mmio' | 'ram'; address: number } | { kind: 'pio'; port: number };

/** A guest that marks the time, does `count` reads of `target` in a 3-instruction loop, marks again and powers off. */
function loopGuest(target: Target, count: number): Uint8Array {
  const a = new Assembler(CODE);
  a.movImm32(R.rdx, MARK_PORT).outDx(1);
  a.movImm32(R.rcx, count);
  if (target.kind === 'pio') a.movImm32(R.rdx, target.port);
  else a.movImm64(R.rbx, target.address);
  a.label('loop');
  if (target.kind === 'pio') a.inDx(4);
  else a.load(4, R.rax, R.rbx, 0);
  a.dec32(R.rcx).jcc(CC.ne, 'loop');
  a.movImm32(R.rdx, MARK_PORT).outDx(1);
  a.movImm32(R.rdx, ACPI_SLEEP_CONTROL_PORT).movAl((5 << 2) | 0x20).outDx(1);
  a.label('end').hlt().jmp('end');
  return a.assemble();
}

async function timeLoop(target: Target): Promise<number> {
  const marks: number[] = [];
  const machine = new Machine({ memory: 64 << 20, cpus: 1, boot: { kind: 'raw', images: [], entry: CODE } });
  const marker: BusDevice = { read: (_o, d) => d.fill(0), write: () => void marks.push(performance.now()) };
  machine.pio.register(MARK_PORT, 1, marker, 'bench marker');
  machine.pio.register(TIMING_PORT, 4, { read: (_o, d) => d.fill(0), write: () => undefined }, 'bench port');
  const mmio = attachMmio(machine, new VirtioBlk({ backend: new MemoryBackend(4096) }), 'disk');
  const resolved: Target = target.kind === 'mmio' ? { kind: 'mmio', address: mmio.transport.description.baseAddress } : target;
  machine.memory.write(CODE, loopGuest(resolved, EXITS));
  machine.start();
  const outcome = await machine.outcome;
  if (outcome.kind !== 'poweroff' || marks.length !== 2) throw new Error(`benchmark guest failed: ${JSON.stringify(outcome)}`);
  return ((marks[1] as number) - (marks[0] as number)) * 1000;
}

function mmioDispatch(): number {
  const bus = new Bus('mmio');
  const calls = quick ? 200_000 : 2_000_000;
  let reads = 0;
  const device: BusDevice = {
    read: (_offset, data) => {
      reads++;
      data[0] = 0x76;
    },
    write: () => undefined,
  };
  for (let i = 0; i < 16; i++) bus.register(0xd000_0000 + i * 0x1000, 0x1000, device, `dev${i}`);
  const data = new Uint8Array(4);
  const start = performance.now();
  for (let i = 0; i < calls; i++) bus.read(0xd000_7000, data);
  const ns = ((performance.now() - start) * 1e6) / calls;
  if (reads !== calls) throw new Error('dispatch lost reads');
  return ns;
}

function rssOf(mappingStart: bigint | undefined): { total: number; mapping: number } {
  const smaps = readFileSync('/proc/self/smaps', 'utf8').split('\n');
  let total = 0;
  let mapping = 0;
  let inMapping = false;
  for (const line of smaps) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ /.exec(line);
    if (head !== null) inMapping = mappingStart !== undefined && BigInt(`0x${head[1]}`) === mappingStart;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null) {
      total += Number(rss[1]) * 1024;
      if (inMapping) mapping += Number(rss[1]) * 1024;
    }
  }
  return { total, mapping };
}

async function memoryOverhead(): Promise<void> {
  const before = rssOf(undefined).total;
  const machine = new Machine({ memory: 512 << 20, cpus: 1, boot: { kind: 'raw', images: [], entry: CODE } });
  const a = new Assembler(CODE);
  a.label('idle').hlt().jmp('idle');
  machine.memory.write(CODE, a.assemble());
  machine.start();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = rssOf(machine.ram.hostAddress);
  await machine.stop();
  report('node-baseline-rss', before / 2 ** 20, 'MiB');
  report('guest-ram-resident', after.mapping / 2 ** 20, 'MiB');
  report('rss-overhead', (after.total - after.mapping) / 2 ** 20, 'MiB');
  report('rss-overhead-over-baseline', (after.total - after.mapping - before) / 2 ** 20, 'MiB');
}

const noKvm = kvmUnavailableReason();
report('mmio-dispatch', mmioDispatch(), 'ns');
if (noKvm !== undefined) {
  console.warn(`SKIP: ${PKG} exit and memory benchmarks need KVM: ${noKvm}`);
} else {
  // The best of three runs: on a shared (nested) host the slowest runs measure the neighbours.
  const best = async (target: Target): Promise<number> => Math.min(await timeLoop(target), await timeLoop(target), await timeLoop(target));
  const ram = await best({ kind: 'ram', address: RAM_TARGET });
  const mmio = await best({ kind: 'mmio', address: 0 });
  const pio = await best({ kind: 'pio', port: TIMING_PORT });
  report('guest-loop-iteration', ram / EXITS, 'us');
  report('mmio-exit-round-trip', (mmio - ram) / EXITS, 'us');
  report('pio-exit-round-trip', (pio - ram) / EXITS, 'us');
  await memoryOverhead();
}
if (!hostVirtualization().hardware) {
  console.warn(`SKIP: ${PKG} boot-to-init and guest dd throughput against QEMU+KVM need hardware virtualization (vmx/svm without kvm_pvm); this host has none`);
}
