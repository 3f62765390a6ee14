/**
 * The body of a vCPU thread: applies the initial CPU state, then runs
 * KVM_RUN in a loop. Port and MMIO exits are handed to the main thread
 * through the mailbox (the worker blocks until they are completed); exits
 * that end the vCPU are posted as a {@link VcpuStop} message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KVM } from './ioctls.js';
import { EXIT, REG, REGS_SIZE, RUN, SYSTEM_EVENT, VCPU_EVENTS } from './layout.js';
import { EINTR, errnoName, libc } from './libc.js';
import { MAILBOX, STATE, type VcpuStop, type VcpuWorkerData } from './mailbox.js';

const INTERNAL_ERROR_EMULATION = 1;
const EMULATION_FLAG_INSTRUCTION_BYTES = 1n;
const BREAKPOINT_VECTOR = 3;

const data = workerData as VcpuWorkerData;
const c = libc();
const mailbox = new Int32Array(data.mailbox);
const run = new DataView(c.view(data.runAddress, data.runSize));

function fail(operation: string): VcpuStop {
  return { kind: 'error', message: `${operation} failed: ${errnoName(c.errno())}` };
}

function setup(): VcpuStop | undefined {
  if (c.ioctlPtr(data.vcpuFd, KVM.SET_CPUID2, data.cpuid) < 0) return fail('KVM_SET_CPUID2');
  if (data.sregs !== undefined && c.ioctlPtr(data.vcpuFd, KVM.SET_SREGS, data.sregs) < 0) return fail('KVM_SET_SREGS');
  if (data.regs !== undefined && c.ioctlPtr(data.vcpuFd, KVM.SET_REGS, data.regs) < 0) return fail('KVM_SET_REGS');
  return undefined;
}

/**
 * kvm_pvm emulates guest ring-0 code and lacks some instructions. An `int3`
 * becomes the #BP trap it would have raised; an `fwait` (no x87 exceptions
 * are ever pending here) is skipped. Returns false for anything else.
 */
function emulateQuirk(): boolean {
  if (run.getUint32(RUN.internal.suberror, true) !== INTERNAL_ERROR_EMULATION) return false;
  if ((run.getBigUint64(RUN.internal.data, true) & EMULATION_FLAG_INSTRUCTION_BYTES) === 0n) return false;
  const opcode = run.getUint8(RUN.internal.data + 9);
  if (opcode !== 0xcc && opcode !== 0x9b) return false;
  const regs = new Uint8Array(REGS_SIZE);
  const view = new DataView(regs.buffer);
  if (c.ioctlPtr(data.vcpuFd, KVM.GET_REGS, regs) < 0) return false;
  view.setBigUint64(REG.rip * 8, view.getBigUint64(REG.rip * 8, true) + 1n, true);
  if (c.ioctlPtr(data.vcpuFd, KVM.SET_REGS, regs) < 0) return false;
  if (opcode === 0xcc) {
    const events = new Uint8Array(VCPU_EVENTS.size);
    if (c.ioctlPtr(data.vcpuFd, KVM.GET_VCPU_EVENTS, events) < 0) return false;
    events[VCPU_EVENTS.exceptionInjected] = 1;
    events[VCPU_EVENTS.exceptionNr] = BREAKPOINT_VECTOR;
    events[VCPU_EVENTS.exceptionHasErrorCode] = 0;
    events[VCPU_EVENTS.exceptionPending] = 0;
    new DataView(events.buffer).setUint32(VCPU_EVENTS.flags, 0, true);
    if (c.ioctlPtr(data.vcpuFd, KVM.SET_VCPU_EVENTS, events) < 0) return false;
  }
  return true;
}

function describeInternalError(): string {
  const suberror = run.getUint32(RUN.internal.suberror, true);
  if (suberror === INTERNAL_ERROR_EMULATION && (run.getBigUint64(RUN.internal.data, true) & EMULATION_FLAG_INSTRUCTION_BYTES) !== 0n) {
    const length = Math.min(run.getUint8(RUN.internal.data + 8), 15);
    const bytes: string[] = [];
    for (let i = 0; i < length; i++) bytes.push(run.getUint8(RUN.internal.data + 9 + i).toString(16).padStart(2, '0'));
    return `KVM could not emulate the instruction ${bytes.join(' ')}`;
  }
  return `KVM internal error, suberror ${suberror}`;
}

function loop(): VcpuStop {
  const fd = data.vcpuFd;
  for (;;) {
    if (Atomics.load(mailbox, MAILBOX.stop) !== 0) return { kind: 'stopped' };
    if (c.ioctlInt(fd, KVM.RUN, 0) < 0) {
      const errno = c.errno();
      if (errno === EINTR) continue;
      return { kind: 'error', message: `KVM_RUN failed: ${errnoName(errno)}` };
    }
    const reason = run.getUint32(RUN.exitReason, true);
    switch (reason) {
      case EXIT.IO:
      case EXIT.MMIO:
        Atomics.store(mailbox, MAILBOX.state, STATE.EXIT);
        Atomics.notify(mailbox, MAILBOX.state);
        Atomics.wait(mailbox, MAILBOX.state, STATE.EXIT);
        break;
      case EXIT.INTR:
        break;
      case EXIT.HLT:
        return { kind: 'halted' };
      case EXIT.SHUTDOWN:
        return { kind: 'triple-fault' };
      case EXIT.SYSTEM_EVENT: {
        const type = run.getUint32(RUN.systemEvent.type, true);
        if (type === SYSTEM_EVENT.SHUTDOWN) return { kind: 'shutdown' };
        if (type === SYSTEM_EVENT.RESET) return { kind: 'reset' };
        if (type === SYSTEM_EVENT.CRASH) return { kind: 'crash' };
        break;
      }
      case EXIT.INTERNAL_ERROR:
        if (data.emulatorQuirks && emulateQuirk()) break;
        return { kind: 'error', message: describeInternalError() };
      case EXIT.FAIL_ENTRY:
        return { kind: 'error', message: `KVM could not enter the guest (hardware reason 0x${run.getBigUint64(RUN.failEntry.reason, true).toString(16)})` };
      default:
        return { kind: 'error', message: `unexpected KVM exit reason ${reason}` };
    }
  }
}

Atomics.store(mailbox, MAILBOX.tid, c.gettid());
const stop = setup() ?? loop();
parentPort?.postMessage(stop);
