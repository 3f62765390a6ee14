/**
 * Drives the loopback device through a transport with the test driver and
 * prints every step: status transitions, feature negotiation, where the rings
 * went in guest memory, the requests, the bytes that came back, interrupts.
 *
 *   pnpm --filter @virtio-ts/driver run example
 */
import { GuestMemory } from '@virtio-ts/virtqueue';
import { LoopbackDevice, VirtioDriver, coreTransportFactory, featureNames, statusNames, type DriverEvent } from '../src/index.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

function describe(event: DriverEvent): string {
  switch (event.kind) {
    case 'reset':
      return 'reset the device (status 0)';
    case 'status':
      return `status <- ${statusNames(event.written)}; device reports ${statusNames(event.readBack)}`;
    case 'features':
      return `device offers  ${featureNames(event.offered)}\n       driver accepts ${featureNames(event.written)}`;
    case 'queue':
      return `queue ${event.index}: ${event.packed ? 'packed' : 'split'} ring of ${event.config.size} entries: descriptors at ${hex(event.config.descAddr)}, driver area at ${hex(event.config.driverAddr)}, device area at ${hex(event.config.deviceAddr)}`;
    case 'queue-reset':
      return `queue ${event.index} reset`;
    case 'available':
      return `queue ${event.index}: chain ${event.id} available (${event.descriptors} buffers${event.indirect ? ', in an indirect table' : ''})`;
    case 'notify':
      return `queue ${event.index}: notify the device${event.data === undefined ? '' : ` with notification data ${hex(event.data)}`}`;
    case 'notify-suppressed':
      return `queue ${event.index}: the device asked not to be notified`;
    case 'interrupt':
      return event.cause.kind === 'config' ? 'interrupt: configuration change' : `interrupt: used buffers on queue ${event.cause.index ?? '?'}`;
    case 'used':
      return `queue ${event.index}: chain ${event.id} used, ${event.len} bytes written`;
    case 'config-retry':
      return `configuration changed during a read; reading again (attempt ${event.attempt + 1})`;
    case 'needs-reset':
      return 'the device needs a reset';
  }
}

async function main(): Promise<void> {
  const memory = GuestMemory.create(1 << 20);
  const device = new LoopbackDevice({ queueSize: 8 });
  const transport = coreTransportFactory.create(memory, device);
  let step = 0;
  const driver = new VirtioDriver(transport, { trace: (event) => console.log(`${String(++step).padStart(3)}. ${describe(event)}`) });
  console.log(`virtio-ts demo: the loopback device (device ID ${transport.deviceId()}) over the '${transport.name}' transport\n`);

  for (const packed of [false, true]) {
    console.log(`\n--- ${packed ? 'packed' : 'split'} virtqueue, indirect descriptors, event idx, notification data ---`);
    await driver.init({ packed, indirect: true, eventIdx: true, notificationData: true });
    const text = `hello from a ${packed ? 'packed' : 'split'} ring`;
    const bytes = new TextEncoder().encode(text);
    console.log(`     request: "${text}" (${bytes.length} bytes out, 64 bytes of room back)`);
    const answer = await driver.queue(0).request([bytes.subarray(0, 6), bytes.subarray(6)], [64]);
    console.log(`     answer:  "${new TextDecoder().decode(answer.data)}" (len ${answer.len})`);
    console.log(`     config:  served = ${driver.readConfigU32(0)}`);
  }

  console.log('\n--- configuration change ---');
  const changed = driver.configChanged();
  driver.writeConfigU32(4, 0xc0ffee);
  await changed;
  console.log(`     scratch = ${hex(driver.readConfigU32(4))}`);

  await driver.reset();
  const queueInterrupts = [...driver.interrupts.queue].map(([index, count]) => `queue ${index}: ${count}`).join(', ');
  console.log(`\ninterrupts: ${driver.interrupts.total} in all (config: ${driver.interrupts.config}; ${queueInterrupts})`);
}

main().catch((error: unknown) => {
  console.error(`example failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
