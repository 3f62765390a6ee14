import { LoopbackDevice } from '@virtio-ts/driver';
import { GuestMemory } from '@virtio-ts/virtqueue';
import { describe, expect, it } from 'vitest';
import { MmioRegister, MmioTransport, VIRTIO_MMIO_COMPATIBLE, deviceTreeNode, kernelCommandLineArgument, registerBlockSize } from '../src/index.js';

function transport(baseAddress: number, device = new LoopbackDevice(), size?: number): MmioTransport {
  return new MmioTransport({ device, memory: GuestMemory.create(0x1000), baseAddress, irq: { number: 12, set: () => undefined }, ...(size === undefined ? {} : { size }) });
}

describe('the description a VMM gives the guest (spec 4.2.1)', () => {
  it('holds the base, a 0x200-byte block as in the spec example, the interrupt and the device type', () => {
    expect(transport(0xd000_0000).description).toEqual({ baseAddress: 0xd000_0000, size: 0x200, interrupt: 12, deviceType: new LoopbackDevice().deviceType });
  });

  it('grows the block to the next power of two for a configuration space beyond 0x100 bytes, or takes the size given', () => {
    expect([0, 8, 0x100, 0x101, 0x180, 0x300].map(registerBlockSize)).toEqual([0x200, 0x200, 0x200, 0x400, 0x400, 0x400]);
    expect(transport(0, new LoopbackDevice(), 0x1000).description.size).toBe(0x1000);
  });

  it("renders Linux's virtio_mmio.device=<size>@<base>:<irq> argument", () => {
    expect(kernelCommandLineArgument(transport(0xd000_0000).description)).toBe('virtio_mmio.device=0x200@0xd0000000:12');
  });

  it('renders the device-tree node of the spec example with 64-bit reg cells', () => {
    expect(deviceTreeNode(transport(0x1e000).description)).toEqual({
      name: 'virtio_mmio@1e000',
      compatible: VIRTIO_MMIO_COMPATIBLE,
      reg: [0, 0x1e000, 0, 0x200],
      interrupt: 12,
    });
    expect(deviceTreeNode(transport(0x1_2000_0000).description).reg).toEqual([1, 0x2000_0000, 0, 0x200]);
  });

  it('gives the guest-physical address of QueueNotify for an ioeventfd', () => {
    expect(transport(0xd000_0000).notifyAddress).toBe(0xd000_0000 + MmioRegister.QueueNotify);
  });
});
