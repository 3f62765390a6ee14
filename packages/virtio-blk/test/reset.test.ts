/**
 * Reset with requests in flight (spec 2.4, 2.6.1), through @virtio-ts/driver's
 * VirtioDriver: a backend read the device cannot recall is still landing in
 * its guest buffer when the driver resets. The reset must not complete (device
 * status must not read 0, the queue reset must not finish) until that read is
 * over, and from then on nothing the old requests did reaches guest memory:
 * not their status bytes, not the old ring, not the re-initialised one.
 */
import type { DriverQueue, TransportFactory, VirtioDriver } from '@virtio-ts/driver';
import { GuestMemory, VIRTIO_F_RING_RESET, hasFeature } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { MemoryBackend, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VirtioBlk } from '../src/index.js';
import { GatedBackend, settle } from './gated-backend.js';
import { CANARY, TRANSPORTS_AND_LAYOUTS, connect, expectBytes, header, patterned } from './setup.js';

/** How long the backend keeps the read after the reset started: long enough for a reset that does not wait to finish. */
const READ_DELAY_MS = 20;

interface Setup {
  readonly driver: VirtioDriver;
  readonly gate: GatedBackend;
  readonly memory: GuestMemory;
  readonly image: Uint8Array;
}

async function start(transport: TransportFactory, packed: boolean): Promise<Setup> {
  const image = patterned(64 * 512);
  const gate = new GatedBackend(new MemoryBackend(image));
  const memory = GuestMemory.create(8 << 20);
  const driver = connect(transport, memory, new VirtioBlk({ backend: gate }));
  await driver.init({ packed, ringReset: true });
  return { driver, gate, memory, image };
}

/** Makes a 1024-byte read of sector `sector` available, buffers filled with CANARY; returns the data and status addresses. */
function submitRead(driver: VirtioDriver, queue: DriverQueue, sector: number): { data: number; status: number } {
  const head = driver.allocate(16, 8);
  driver.memory.write(head, header(VIRTIO_BLK_T_IN, sector));
  const data = driver.allocate(1024, 8);
  const status = driver.allocate(1);
  driver.memory.fill(data, 1024, CANARY);
  driver.memory.setU8(status, CANARY);
  queue.add([
    { addr: head, len: 16, writable: false },
    { addr: data, len: 1024, writable: true },
    { addr: status, len: 1, writable: true },
  ]);
  queue.kick();
  return { data, status };
}

/** Lets the held reads run after READ_DELAY_MS, as a slow disk would finish them. */
function finishLater(gate: GatedBackend): void {
  setTimeout(() => {
    gate.hold = () => false;
    gate.release();
  }, READ_DELAY_MS);
}

function bytesAt(memory: GuestMemory, addr: number, len: number): Uint8Array {
  const bytes = new Uint8Array(len);
  memory.read(addr, bytes);
  return bytes;
}

/** A copy of all guest memory. */
function snapshot(memory: GuestMemory): Uint8Array {
  return bytesAt(memory, 0, memory.size);
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The two resets that must wait for the device's in-flight I/O: of the whole device, or of one queue. */
const RESETS = [
  ['spec 2.4: a device reset', { device: true, sector: 2 }],
  ['spec 2.6.1: a queue reset', { device: false, sector: 4 }],
] as const;

describe.each(TRANSPORTS_AND_LAYOUTS)('reset with requests in flight over %s (packed=%s)', (_name, packed, transport) => {
  it.for(RESETS)('%s completes only once the slow read landed; afterwards the old request writes nothing, and the restarted queue serves', async ([, { device, sector }], context) => {
    const { driver, gate, memory, image } = await start(transport, packed);
    if (!device && !hasFeature(driver.features, VIRTIO_F_RING_RESET)) {
      console.warn(`SKIP: queue reset with requests in flight over ${transport.name}: the transport does not carry VIRTIO_F_RING_RESET`);
      context.skip();
    }
    gate.hold = () => true;
    const { data, status } = submitRead(driver, driver.queue(0), sector);
    await settle();
    expect(gate.held).toHaveLength(1);
    const live = driver.transport.getStatus();
    const quiet = driver.interrupts.total;
    const resetting = device ? driver.reset() : driver.resetQueue(0);
    let reset = false;
    void resetting.then(() => (reset = true));
    await settle();
    // The read is still in the backend's hands: the reset is not complete (a device reset: status does not read 0 yet).
    expect(reset).toBe(false);
    if (device) expect(driver.transport.getStatus()).not.toBe(0);
    else expect(driver.transport.getStatus()).toBe(live);
    finishLater(gate);
    await resetting;
    expect(driver.transport.getStatus()).toBe(device ? 0 : live);
    // The read landed before the reset completed (DMA in flight); its status and used entry never will.
    const at = sector * 512;
    expect(bytesAt(memory, data, 1024)).toEqual(image.subarray(at, at + 1024));
    expect(memory.getU8(status)).toBe(CANARY);
    const after = snapshot(memory);
    await wait(2 * READ_DELAY_MS);
    await settle();
    expectBytes(snapshot(memory), after, 'guest memory after the reset completed');
    if (device) await driver.init({ packed, ringReset: true });
    const queue = device ? driver.queue(0) : driver.enableQueue(0);
    const c = await queue.request([header(VIRTIO_BLK_T_IN, sector + 1)], [512, 1]);
    expect(c.data[512]).toBe(VIRTIO_BLK_S_OK);
    expect(c.data.subarray(0, 512)).toEqual(image.subarray(at + 512, at + 1024));
    // One interrupt in all: for the new request, none for the old one.
    expect(driver.interrupts.total - quiet).toBe(1);
  });
});
