import { EINVAL, KVM_S390_VIRTIO_CCW_NOTIFY } from './constants.js';
import type { CcwTransport } from './transport.js';

/** The general registers a DIAGNOSE 0x500 hypercall passes, as 64-bit values. */
export interface Diagnose500Registers {
  /** The subcode. */
  readonly gpr1: bigint;
  /** The subchannel ID word in bits 32-63. */
  readonly gpr2: bigint;
  /** The notification data. */
  readonly gpr3: bigint;
  /** The host cookie of the previous notification. */
  readonly gpr4: bigint;
}

/**
 * The VMM's handler for DIAGNOSE 0x500, the virtio-ccw available buffer
 * notification (spec 4.3.3.2): finds the subchannel named in GPR 2 and notifies
 * its device. Returns the new value of GPR 2 as a signed 64-bit value (a host
 * cookie, or -EINVAL for an unknown subchannel or queue), or undefined for a
 * subcode other than 3, which the VMM answers as it sees fit (QEMU injects a
 * specification exception).
 */
export function diagnose500(registers: Diagnose500Registers, findSubchannel: (subchannelId: number) => CcwTransport | undefined): bigint | undefined {
  if (registers.gpr1 !== BigInt(KVM_S390_VIRTIO_CCW_NOTIFY)) return undefined;
  // spec 4.3.3.2.1: the device ignores bits 0-31 of GPR 2 (counting from the left).
  const transport = findSubchannel(Number(BigInt.asUintN(32, registers.gpr2)));
  if (transport === undefined) return BigInt(-EINVAL);
  return BigInt(transport.notify(Number(BigInt.asUintN(32, registers.gpr3))));
}
