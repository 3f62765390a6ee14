import { runVmmCli } from '@virtio-ts/vmm';
import type { Command } from '../command.js';

/** `virtio-ts vmm run ...`: our own VMM on KVM (apps/vmm), with its own argument parsing and help. */
export const vmm: Command = {
  summary: 'boot a Linux guest on the virtio-ts KVM VMM: vmm run --kernel FILE [--blk path=IMG,transport=pci|mmio] ... (vmm help)',
  run: (args) => runVmmCli(args),
};
