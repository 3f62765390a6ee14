/**
 * The virtio conformance suite of @virtio-ts/driver for the block device,
 * over the status machine, MMIO, PCI and CCW: every ring layout, malformed
 * chains, bad configuration accesses, unoffered features, resets with
 * requests in flight and re-initialisation.
 */
import type { VirtioDriver } from '@virtio-ts/driver';
import { describeVirtioConformance } from '@virtio-ts/driver/conformance';
import { featureBit } from '@virtio-ts/virtqueue';
import { expect } from 'vitest';
import {
  MemoryBackend,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VirtioBlk,
} from '../src/index.js';
import { GatedBackend } from './gated-backend.js';
import { TRANSPORTS, header, patterned } from './setup.js';

const SECTORS = 128;
const SERIAL = 'conformance';

function gate(device: VirtioBlk): GatedBackend {
  return device.backend as GatedBackend;
}

let round = 0;

describeVirtioConformance<VirtioBlk>({
  name: 'VirtioBlk conformance',
  transports: TRANSPORTS,
  createDevice: () => new VirtioBlk({ backend: new GatedBackend(new MemoryBackend(SECTORS * 512)), serial: SERIAL }),
  features:
    featureBit(VIRTIO_BLK_F_SEG_MAX) |
    featureBit(VIRTIO_BLK_F_BLK_SIZE) |
    featureBit(VIRTIO_BLK_F_FLUSH) |
    featureBit(VIRTIO_BLK_F_CONFIG_WCE) |
    featureBit(VIRTIO_BLK_F_DISCARD) |
    featureBit(VIRTIO_BLK_F_WRITE_ZEROES),
  exercise: async (driver: VirtioDriver) => {
    const queue = driver.queue(0);
    const sector = (round++ * 4) % (SECTORS - 4);
    const data = patterned(1536, round);
    // Linux's framing: header, data, status in separate buffers.
    const written = await queue.request([header(VIRTIO_BLK_T_OUT, sector), data], [1]);
    expect(written.len).toBe(1);
    expect(written.data[0]).toBe(VIRTIO_BLK_S_OK);
    // Another framing: the data and the status in one writable buffer.
    const read = await queue.request([header(VIRTIO_BLK_T_IN, sector)], [data.length + 1]);
    expect(read.len).toBe(data.length + 1);
    expect(read.data.subarray(0, data.length)).toEqual(data);
    expect(read.data[data.length]).toBe(VIRTIO_BLK_S_OK);
    const id = await queue.request([header(VIRTIO_BLK_T_GET_ID, 0)], [20, 1]);
    expect(new TextDecoder().decode(id.data.subarray(0, SERIAL.length))).toBe(SERIAL);
    expect(id.data[20]).toBe(VIRTIO_BLK_S_OK);
  },
  inFlight: {
    submit: (driver, device) => {
      gate(device).hold = () => true;
      const queue = driver.queue(0);
      for (let i = 0; i < 3; i++) {
        const head = driver.allocate(16, 8);
        driver.transport.memory.write(head, header(VIRTIO_BLK_T_IN, i));
        queue.add([
          { addr: head, len: 16, writable: false },
          { addr: driver.allocate(512, 8), len: 512, writable: true },
          { addr: driver.allocate(1), len: 1, writable: true },
        ]);
      }
      queue.kick();
    },
    settle: async (device) => {
      gate(device).hold = () => false;
      gate(device).release();
      await device.settled();
    },
  },
});
