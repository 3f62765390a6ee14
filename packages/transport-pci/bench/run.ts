/**
 * The cost of the register paths a VMM calls on every trapped access: a
 * configuration space read, a common configuration register read and write
 * through a BAR (by BAR and offset, and by guest-physical address), a queue
 * notification through the notify region down to the device, and an MSI-X
 * interrupt out to the sink. Prints `BENCH <package> <case> <value> <unit>`.
 */
import { LoopbackDevice, PciDriverTransport } from '@virtio-ts/driver';
import { CommonCfg, PciBarIndex, PciTransport } from '@virtio-ts/transport-pci';
import { DeviceStatus, GuestMemory, VIRTIO_F_VERSION_1, featureBit } from '@virtio-ts/virtqueue';
import { GuestAllocator, placeSplitRing } from '@virtio-ts/virtqueue/testing';

const PKG = '@virtio-ts/transport-pci';
const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1_000_000 : 5_000_000;

function report(name: string, nsPerOp: number): void {
  console.log(`BENCH ${PKG} ${name} ${nsPerOp.toFixed(1)} ns/op`);
}

/** Runs `op` ROUNDS times in 5 batches after a warm-up; returns ns per call of the fastest batch (the least disturbed by other load). */
function measure(op: (i: number) => void): number {
  const batch = ROUNDS / 5;
  for (let i = 0; i < batch; i++) op(i);
  let best = Infinity;
  for (let b = 0; b < 5; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / batch);
  }
  return best;
}

const memory = GuestMemory.create(16 << 20);
let messages = 0;
let driver: PciDriverTransport | undefined;
const fn = new PciTransport({
  device: new LoopbackDevice(),
  memory,
  msi: {
    signal: (address, data) => {
      messages++;
      driver?.deliverMsi(address, data);
    },
  },
});
const setup = new PciDriverTransport(memory, fn);
driver = setup;
setup.reset();
setup.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
setup.writeDriverFeatures(featureBit(VIRTIO_F_VERSION_1));
setup.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
setup.setupQueue(0, placeSplitRing(new GuestAllocator(0x10_0000, 16 << 20), 256));
setup.setStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
// From here on only the function's side is timed: the sink counts messages and stops there.
driver = undefined;
const virtioBar = fn.bars.find((b) => b.index === PciBarIndex.VIRTIO)?.address;
const notifyAddress = fn.queueNotifyAddress(0);
if (virtioBar === undefined || notifyAddress === undefined || !fn.core.driverOk) throw new Error('bench setup failed: the device did not initialise');

let sink = 0;
report('config-read', measure(() => (sink ^= fn.configRead(0x00, 4))));
report('config-write-command', measure((i) => fn.configWrite(0x04, 2, 0x6 | ((i & 1) << 10))));
report('bar-read-common', measure(() => (sink ^= fn.barRead(PciBarIndex.VIRTIO, CommonCfg.QUEUE_SELECT, 2))));
report('bar-write-common', measure(() => fn.barWrite(PciBarIndex.VIRTIO, CommonCfg.QUEUE_SELECT, 2, 0)));
report('mmio-read-common', measure(() => (sink ^= fn.mmioRead(virtioBar + CommonCfg.DEVICE_STATUS, 1) ?? 0)));
report('bar-read-device-config', measure(() => (sink ^= fn.barRead(PciBarIndex.VIRTIO, 0x2000, 4))));
report('notify', measure(() => fn.mmioWrite(notifyAddress, 2, 0)));
report('msix-interrupt', measure(() => fn.core.configChanged()));
if (fn.violations.access + fn.violations.write + fn.violations.dma !== 0 || messages === 0) throw new Error('bench accesses were refused');
if (sink === 0.5) console.log(sink);
