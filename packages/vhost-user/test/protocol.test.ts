import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackDevice } from '@virtio-ts/driver';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, featureBit, type QueueConfig } from '@virtio-ts/virtqueue';
import { GuestAllocator, PackedRingDriver, SplitRingDriver, placePackedRing, placeSplitRing } from '@virtio-ts/virtqueue/testing';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SocketInUseError, VhostUserServer } from '../src/index.js';
import { HEADER_SIZE, ProtocolFeature, Request, VHOST_USER_F_PROTOCOL_FEATURES } from '../src/protocol/constants.js';
import { u64Payload, vringStatePayload } from '../src/protocol/message.js';
import { GUEST_BASE, SharedRam, TestEventFd, TestFrontend, memTablePayload, vringAddrPayload } from './frontend.js';

const RAM = 1 << 20;
let dir: string;
let socketPath: string;
let device: LoopbackDevice;
let server: VhostUserServer;
let logs: string[];
const cleanup: (() => void)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vhost-user-'));
  socketPath = join(dir, 'sock');
  device = new LoopbackDevice({ queueSize: 64 });
  logs = [];
  server = new VhostUserServer(device, { socketPath, log: (m) => logs.push(m) });
  server.listen();
});

afterEach(() => {
  for (const fn of cleanup.splice(0).reverse()) fn();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves once the server accepted `count` front-ends in all and none is connected. */
async function settled(count: number): Promise<void> {
  while (server.connections < count || server.connected) await new Promise((resolve) => setTimeout(resolve, 1));
}

function connect(): TestFrontend {
  const frontend = TestFrontend.connect(socketPath);
  cleanup.push(() => frontend.close());
  return frontend;
}

function sharedRam(): SharedRam {
  const ram = new SharedRam(RAM);
  cleanup.push(() => ram.close());
  return ram;
}

function eventFd(watch: boolean): TestEventFd {
  const fd = new TestEventFd(watch);
  cleanup.push(() => fd.close());
  return fd;
}

async function u64(frontend: TestFrontend, request: number): Promise<bigint> {
  return (await frontend.call(request)).payload.getBigUint64(0, true);
}

/** Negotiates features the way QEMU does and shares `ram`; returns the acked virtio features. */
async function negotiate(frontend: TestFrontend, ram: SharedRam, ring: bigint): Promise<bigint> {
  const offered = await u64(frontend, Request.GET_FEATURES);
  const protocol = await u64(frontend, Request.GET_PROTOCOL_FEATURES);
  await frontend.ack(Request.SET_PROTOCOL_FEATURES, u64Payload(protocol));
  frontend.request(Request.SET_OWNER);
  const features = featureBit(VIRTIO_F_VERSION_1) | featureBit(VIRTIO_F_EVENT_IDX) | ring;
  expect(offered & features).toBe(features);
  expect(await frontend.ack(Request.SET_FEATURES, u64Payload(features | featureBit(VHOST_USER_F_PROTOCOL_FEATURES)))).toBe(0n);
  expect(await frontend.ack(Request.SET_MEM_TABLE, memTablePayload(ram), [ram.fd])).toBe(0n);
  return features;
}

interface Ring {
  driver: SplitRingDriver | PackedRingDriver;
  config: QueueConfig;
  kick: TestEventFd;
  call: TestEventFd;
  alloc: GuestAllocator;
  /** Used buffers taken so far. */
  completed: number;
}

/** Configures, starts and enables ring 0 from `base`. */
async function startRing(frontend: TestFrontend, ram: SharedRam, packed: boolean, base: number, ring?: Ring): Promise<Ring> {
  const alloc = ring?.alloc ?? new GuestAllocator(GUEST_BASE + 0x1000, GUEST_BASE + RAM, { seed: 7 });
  const config = ring?.config ?? (packed ? placePackedRing(alloc, 16) : placeSplitRing(alloc, 16));
  const driver = ring?.driver ?? (packed ? new PackedRingDriver(ram.memory, config, { eventIdx: true }) : new SplitRingDriver(ram.memory, config, { eventIdx: true }));
  const kick = eventFd(false);
  const call = ring?.call ?? eventFd(true);
  expect(await frontend.ack(Request.SET_VRING_NUM, vringStatePayload(0, 16))).toBe(0n);
  expect(await frontend.ack(Request.SET_VRING_BASE, vringStatePayload(0, base))).toBe(0n);
  expect(await frontend.ack(Request.SET_VRING_ADDR, vringAddrPayload(0, ram, config))).toBe(0n);
  expect(await frontend.ack(Request.SET_VRING_KICK, u64Payload(0n), [kick.fd])).toBe(0n);
  expect(await frontend.ack(Request.SET_VRING_CALL, u64Payload(0n), [call.fd])).toBe(0n);
  expect(await frontend.ack(Request.SET_VRING_ENABLE, vringStatePayload(0, 1))).toBe(0n);
  return { driver, config, kick, call, alloc, completed: ring?.completed ?? 0 };
}

/** Sends `text` through the loopback device and returns what came back. */
async function echo(ram: SharedRam, ring: Ring, text: string): Promise<string> {
  const bytes = new TextEncoder().encode(text);
  const out = ring.alloc.alloc(bytes.length);
  const back = ring.alloc.alloc(bytes.length);
  ram.memory.write(out, bytes);
  const id = ring.driver.add([
    { addr: out, len: bytes.length, writable: false },
    { addr: back, len: bytes.length, writable: true },
  ]);
  // A driver asks for the interrupt of its next used buffer (spec 2.7.10: used_event).
  if (ring.driver instanceof SplitRingDriver) ring.driver.setUsedEvent(ring.completed & 0xffff);
  ring.driver.publish();
  if (ring.driver.kickNeeded()) ring.kick.signal();
  await ring.call.signalled();
  const used = ring.driver.takeUsed();
  expect(used).toEqual({ id, len: bytes.length });
  ring.completed++;
  const result = new Uint8Array(bytes.length);
  ram.memory.read(back, result);
  return new TextDecoder().decode(result);
}

describe('vhost-user back-end against a front-end over a real socket', () => {
  it('offers the device features, VHOST_USER_F_PROTOCOL_FEATURES and the protocol features it implements', async () => {
    const frontend = connect();
    const features = await u64(frontend, Request.GET_FEATURES);
    expect(features & featureBit(VHOST_USER_F_PROTOCOL_FEATURES)).not.toBe(0n);
    expect(features & featureBit(VIRTIO_F_VERSION_1)).not.toBe(0n);
    expect(features & featureBit(VIRTIO_F_RING_PACKED)).not.toBe(0n);
    const protocol = await u64(frontend, Request.GET_PROTOCOL_FEATURES);
    for (const bit of [ProtocolFeature.MQ, ProtocolFeature.REPLY_ACK, ProtocolFeature.CONFIG, ProtocolFeature.RESET_DEVICE, ProtocolFeature.CONFIGURE_MEM_SLOTS]) {
      expect(protocol & featureBit(bit)).not.toBe(0n);
    }
    expect(await u64(frontend, Request.GET_QUEUE_NUM)).toBe(1n);
  });

  it('refuses features it did not offer, with a REPLY_ACK error', async () => {
    const frontend = connect();
    await frontend.ack(Request.SET_PROTOCOL_FEATURES, u64Payload(featureBit(ProtocolFeature.REPLY_ACK)));
    expect(await frontend.ack(Request.SET_FEATURES, u64Payload(featureBit(VIRTIO_F_VERSION_1) | featureBit(5)))).toBe(1n);
    expect(await frontend.ack(Request.SET_FEATURES, u64Payload(featureBit(VIRTIO_F_VERSION_1)))).toBe(0n);
  });

  describe.each([false, true])('packed=%s', (packed) => {
    it('serves requests through shared memory, kick and call eventfds', async () => {
      const frontend = connect();
      const ram = sharedRam();
      await negotiate(frontend, ram, packed ? featureBit(VIRTIO_F_RING_PACKED) : 0n);
      const ring = await startRing(frontend, ram, packed, packed ? 0x80008000 : 0);
      for (let i = 0; i < 40; i++) expect(await echo(ram, ring, `hello ${i}`)).toBe(`hello ${i}`);
      expect(device.served).toBe(40);
    });

    it('GET_VRING_BASE stops the ring and reports where it stopped; SET_VRING_BASE resumes there', async () => {
      const frontend = connect();
      const ram = sharedRam();
      await negotiate(frontend, ram, packed ? featureBit(VIRTIO_F_RING_PACKED) : 0n);
      const ring = await startRing(frontend, ram, packed, packed ? 0x80008000 : 0);
      for (let i = 0; i < 20; i++) await echo(ram, ring, 'x');
      const reply = await frontend.call(Request.GET_VRING_BASE, vringStatePayload(0, 0));
      const base = reply.payload.getUint32(4, true);
      // Split: last_avail_idx. Packed: 20 chains of 2 descriptors fill 40 slots of a 16-slot ring: slot 8 after two
      // laps (wrap counters back to 1), for both the available and the used position.
      expect(base).toBe(packed ? 0x80088008 : 20);
      const resumed = await startRing(frontend, ram, packed, base, ring);
      for (let i = 0; i < 20; i++) expect(await echo(ram, resumed, `again ${i}`)).toBe(`again ${i}`);
    });
  });

  it('answers GET_CONFIG and applies SET_CONFIG', async () => {
    const frontend = connect();
    await frontend.ack(Request.SET_PROTOCOL_FEATURES, u64Payload(featureBit(ProtocolFeature.REPLY_ACK) | featureBit(ProtocolFeature.CONFIG)));
    const write = new Uint8Array(12 + 4);
    const view = new DataView(write.buffer);
    view.setUint32(0, 4, true);
    view.setUint32(4, 4, true);
    view.setUint32(12, 0xfeedf00d, true);
    expect(await frontend.ack(Request.SET_CONFIG, write)).toBe(0n);
    const read = new Uint8Array(12 + 8);
    new DataView(read.buffer).setUint32(4, 8, true);
    const reply = await frontend.call(Request.GET_CONFIG, read);
    expect(reply.payload.byteLength).toBe(20);
    expect(reply.payload.getUint32(16, true)).toBe(0xfeedf00d);
  });

  it('refuses a memory table whose region runs past the end of its file (it would SIGBUS)', async () => {
    const frontend = connect();
    const ram = sharedRam();
    await frontend.ack(Request.SET_PROTOCOL_FEATURES, u64Payload(featureBit(ProtocolFeature.REPLY_ACK)));
    expect(await frontend.ack(Request.SET_MEM_TABLE, memTablePayload(ram, 2 * RAM), [ram.fd])).toBe(1n);
    expect(logs.some((l) => l.includes('runs past the end of its file'))).toBe(true);
  });

  it('refuses a ring whose addresses are outside shared memory, and rings that do not exist', async () => {
    const frontend = connect();
    const ram = sharedRam();
    await negotiate(frontend, ram, 0n);
    const kick = eventFd(false);
    await frontend.ack(Request.SET_VRING_NUM, vringStatePayload(0, 16));
    const far = { size: 16, descAddr: GUEST_BASE + 2 * RAM, driverAddr: GUEST_BASE, deviceAddr: GUEST_BASE + 0x1000 };
    await frontend.ack(Request.SET_VRING_ADDR, vringAddrPayload(0, ram, far));
    expect(await frontend.ack(Request.SET_VRING_KICK, u64Payload(0n), [kick.fd])).toBe(1n);
    expect(await frontend.ack(Request.SET_VRING_NUM, vringStatePayload(5, 16))).toBe(1n);
    expect(await frontend.ack(Request.SET_VRING_NUM, vringStatePayload(0, 128))).toBe(1n);
  });

  it('closes the connection on a payload larger than any request', async () => {
    const frontend = connect();
    const header = new Uint8Array(HEADER_SIZE);
    const view = new DataView(header.buffer);
    view.setUint32(0, Request.SET_MEM_TABLE, true);
    view.setUint32(4, 1, true);
    view.setUint32(8, 1 << 20, true);
    frontend.sendRaw(header);
    await frontend.closedByPeer();
    await settled(1);
  });

  it('serves the next front-end after one disconnects, and refuses a second one meanwhile', async () => {
    const first = connect();
    const ram = sharedRam();
    await negotiate(first, ram, 0n);
    const ring = await startRing(first, ram, false, 0);
    expect(await echo(ram, ring, 'one')).toBe('one');
    const second = connect();
    await second.closedByPeer();
    first.close();
    await settled(1);
    const third = connect();
    const fresh = sharedRam();
    await negotiate(third, fresh, 0n);
    const again = await startRing(third, fresh, false, 0);
    expect(await echo(fresh, again, 'two')).toBe('two');
  });

  it('throws SocketInUseError when the socket path is taken', () => {
    writeFileSync(join(dir, 'file'), '');
    expect(() => new VhostUserServer(device, { socketPath: join(dir, 'file') }).listen()).toThrow(SocketInUseError);
    expect(() => new VhostUserServer(device, { socketPath }).listen()).toThrow(SocketInUseError);
  });

  it('survives arbitrary messages: afterwards a front-end is still served', async () => {
    const ram = sharedRam();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ request: fc.integer({ min: 0, max: 45 }), flags: fc.integer({ min: 0, max: 15 }), payload: fc.uint8Array({ maxLength: 64 }) }), {
          minLength: 1,
          maxLength: 12,
        }),
        async (messages) => {
          const before = server.connections;
          const frontend = connect();
          for (const m of messages) {
            const bytes = new Uint8Array(HEADER_SIZE + m.payload.length);
            const view = new DataView(bytes.buffer);
            view.setUint32(0, m.request, true);
            view.setUint32(4, m.flags, true);
            view.setUint32(8, m.payload.length, true);
            bytes.set(m.payload, HEADER_SIZE);
            try {
              frontend.sendRaw(bytes);
            } catch {
              break; // The back-end closed the connection, as it may for garbage.
            }
          }
          frontend.close();
          await settled(before + 1);
        },
      ),
      { numRuns: 60 },
    );
    const frontend = connect();
    await negotiate(frontend, ram, 0n);
    const ring = await startRing(frontend, ram, false, 0);
    expect(await echo(ram, ring, 'still here')).toBe('still here');
  });
});
