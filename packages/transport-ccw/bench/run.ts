/**
 * The cost of one channel command (a one-CCW READ_STATUS program: START
 * SUBCHANNEL, the CCW fetched and executed, status made pending and the I/O
 * interruption raised, TEST SUBCHANNEL) and of one available buffer
 * notification (DIAGNOSE 0x500 decoded and routed to the running device, whose
 * ring is empty), on a LoopbackDevice initialised by the guest driver.
 * Prints one `BENCH <package> <case> <value> <unit>` line per case.
 */
import { DeviceStatus, VIRTIO_F_VERSION_1, featureBit } from '@virtio-ts/virtqueue';
import { GuestAllocator, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import { CcwCommand, diagnose500, type Diagnose500Registers } from '../src/index.js';
import { PROGRAM, RAM, SUBCHANNEL_ID, driverRig, writeProgram } from '../test/harness.js';

const PKG = '@virtio-ts/transport-ccw';
const quick = process.argv.includes('--quick');
const N = quick ? 200_000 : 2_000_000;

function report(name: string, value: number, unit: string): void {
  console.log(`BENCH ${PKG} ${name} ${value.toFixed(1)} ${unit}`);
}

function nsPerOp(op: () => void): number {
  for (let i = 0; i < N / 10; i++) op();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) op();
  return Number(process.hrtime.bigint() - t0) / N;
}

const rig = driverRig();
const { driver, transport, memory } = rig;
const { ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK } = DeviceStatus;
driver.reset();
driver.setStatus(ACKNOWLEDGE | DRIVER);
driver.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
if (!driver.setupQueue(0, placeSplitRing(new GuestAllocator(RAM.start, RAM.end), 256))) throw new Error('bench: queue setup failed');
driver.setStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);

writeProgram(memory, [{ command: CcwCommand.READ_STATUS, count: 1 }]);
report(
  'read-status-command',
  nsPerOp(() => {
    transport.startSubchannel(PROGRAM, 1);
    transport.testSubchannel();
  }),
  'ns/command',
);

const registers: Diagnose500Registers = { gpr1: 3n, gpr2: BigInt(SUBCHANNEL_ID), gpr3: 0n, gpr4: 0n };
const find = (sid: number) => (sid === SUBCHANNEL_ID ? transport : undefined);
report(
  'diagnose500-notification',
  nsPerOp(() => diagnose500(registers, find)),
  'ns/notification',
);
report(
  'notification',
  nsPerOp(() => transport.notify(0)),
  'ns/notification',
);
