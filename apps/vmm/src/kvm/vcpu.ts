import type { Worker } from 'node:worker_threads';
import { KvmError } from './errors.js';
import { RUN, EXIT } from './layout.js';
import { MAP_FAILED, MAP_SHARED, PROT_RW, libc } from './libc.js';
import { KICK_SIGNAL, KICK_SIGNAL_NUMBER, MAILBOX, STATE, type VcpuStop, type VcpuWorkerData } from './mailbox.js';
import type { Vm } from './vm.js';
import { startWorker } from './worker-url.js';

/** Where the main thread sends a vCPU's port and MMIO accesses. */
export interface ExitHandler {
  /** A port access of `data.length` bytes; for a read (`!isWrite`), fill `data`. */
  pio(port: number, isWrite: boolean, data: Uint8Array): void;
  /**
   * An MMIO access of `data.length` bytes at guest-physical `address`; for a
   * read, fill `data`. A returned promise holds the vCPU in the exit until it settles.
   */
  mmio(address: number, isWrite: boolean, data: Uint8Array): void | Promise<void>;
}

/** The initial state of a vCPU, as KVM structures. */
export interface VcpuInit {
  /** struct kvm_cpuid2 for KVM_SET_CPUID2. */
  readonly cpuid: Uint8Array;
  /** struct kvm_sregs; omitted keeps the reset state (application processors). */
  readonly sregs?: Uint8Array;
  /** struct kvm_regs; omitted keeps the reset state. */
  readonly regs?: Uint8Array;
}

/** Atomics.waitAsync (ES2024, in Node since 16), typed here so that the package builds against ES2022 typings. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

const kickHandler = (): void => undefined;
let kickUsers = 0;

/**
 * One vCPU running KVM_RUN in its own worker thread. The main thread stays
 * free: it completes port and MMIO exits handed over through the mailbox and
 * raises interrupts while the vCPU runs or is halted in the kernel.
 */
export class VcpuThread {
  /** The vCPU index (its APIC ID). */
  readonly id: number;
  /** Settles when the vCPU thread ended, with the reason. */
  readonly stopped: Promise<VcpuStop>;
  private readonly fd: number;
  private readonly runAddress: bigint;
  private readonly runSize: number;
  private readonly run: DataView;
  private readonly runBytes: Uint8Array;
  private readonly mailbox: Int32Array;
  private readonly worker: Worker;
  private readonly handler: ExitHandler;
  private readonly log: (message: string) => void;
  private readonly exitViews: Uint8Array[];
  private ended = false;

  /** Creates vCPU `id` in `vm` and starts its thread. */
  constructor(vm: Vm, id: number, init: VcpuInit, handler: ExitHandler, options: { emulatorQuirks: boolean; log: (message: string) => void }) {
    const c = libc();
    this.id = id;
    this.handler = handler;
    this.log = options.log;
    this.fd = vm.createVcpu(id);
    this.runSize = vm.kvm.vcpuMmapSize;
    this.runAddress = c.mmap(this.runSize, PROT_RW, MAP_SHARED, this.fd, 0);
    if (this.runAddress === MAP_FAILED) throw new KvmError('mmap kvm_run', c.errno());
    const buffer = c.view(this.runAddress, this.runSize);
    this.run = new DataView(buffer);
    this.runBytes = new Uint8Array(buffer);
    this.exitViews = [];
    this.mailbox = new Int32Array(new SharedArrayBuffer(MAILBOX.words * 4));
    if (kickUsers++ === 0) process.on(KICK_SIGNAL, kickHandler);
    const data: VcpuWorkerData = {
      vcpuFd: this.fd,
      runAddress: this.runAddress,
      runSize: this.runSize,
      mailbox: this.mailbox.buffer as SharedArrayBuffer,
      cpuid: init.cpuid,
      sregs: init.sregs,
      regs: init.regs,
      emulatorQuirks: options.emulatorQuirks,
    };
    this.worker = startWorker('vcpu-worker', data);
    this.stopped = new Promise<VcpuStop>((resolve) => {
      let result: VcpuStop = { kind: 'error', message: 'vCPU thread exited without a reason' };
      this.worker.on('message', (message: VcpuStop) => (result = message));
      this.worker.on('error', (error) => (result = { kind: 'error', message: `vCPU thread failed: ${error.message}` }));
      this.worker.on('exit', () => {
        this.ended = true;
        Atomics.notify(this.mailbox, MAILBOX.state);
        if (--kickUsers === 0) process.off(KICK_SIGNAL, kickHandler);
        c.munmap(this.runAddress, this.runSize);
        c.close(this.fd);
        resolve(result);
      });
    });
    void this.serve();
  }

  /**
   * Stops the vCPU: sets kvm_run.immediate_exit so the next KVM_RUN returns
   * at once, and signals the thread so a KVM_RUN in progress (even a halted
   * guest) returns EINTR. Resolves when the thread has ended.
   */
  async stop(): Promise<VcpuStop> {
    if (!this.ended) {
      Atomics.store(this.mailbox, MAILBOX.stop, 1);
      this.run.setUint8(RUN.immediateExit, 1);
      const tid = Atomics.load(this.mailbox, MAILBOX.tid);
      if (tid !== 0) libc().tgkill(process.pid, tid, KICK_SIGNAL_NUMBER);
      Atomics.store(this.mailbox, MAILBOX.state, STATE.RUNNING);
      Atomics.notify(this.mailbox, MAILBOX.state);
    }
    return this.stopped;
  }

  /** Completes exits as the worker posts them, until the thread ends. */
  private async serve(): Promise<void> {
    const mailbox = this.mailbox;
    while (!this.ended) {
      const wait = waitAsync(mailbox, MAILBOX.state, STATE.RUNNING);
      if (wait.async) await wait.value;
      if (Atomics.load(mailbox, MAILBOX.state) !== STATE.EXIT) continue;
      const held = this.complete();
      if (held !== undefined) await this.settle(held);
      if (this.ended) return;
      Atomics.store(mailbox, MAILBOX.state, STATE.RUNNING);
      Atomics.notify(mailbox, MAILBOX.state);
    }
  }

  /** Waits for a held access; a failure is logged and the access completes anyway. */
  private async settle(held: Promise<void>): Promise<void> {
    try {
      await held;
    } catch (error) {
      this.log(`vCPU ${this.id}: device access failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Completes the exit in kvm_run; returns the device's promise when it holds the access. */
  private complete(): Promise<void> | undefined {
    const run = this.run;
    try {
      if (run.getUint32(RUN.exitReason, true) === EXIT.IO) {
        const size = run.getUint8(RUN.io.size);
        const isWrite = run.getUint8(RUN.io.direction) === 1;
        const port = run.getUint16(RUN.io.port, true);
        const count = run.getUint32(RUN.io.count, true);
        let offset = Number(run.getBigUint64(RUN.io.dataOffset, true));
        for (let i = 0; i < count; i++, offset += size) {
          this.handler.pio(port, isWrite, this.runBytes.subarray(offset, offset + size));
        }
      } else {
        const length = Math.min(run.getUint32(RUN.mmio.len, true), 8);
        const address = Number(run.getBigUint64(RUN.mmio.physAddr, true));
        const isWrite = run.getUint8(RUN.mmio.isWrite) !== 0;
        return this.handler.mmio(address, isWrite, this.exitView(length)) ?? undefined;
      }
    } catch (error) {
      this.log(`vCPU ${this.id}: device access failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    return undefined;
  }

  /** The kvm_run.mmio.data bytes, as a cached view of each length. */
  private exitView(length: number): Uint8Array {
    let view = this.exitViews[length];
    if (view === undefined) {
      view = this.runBytes.subarray(RUN.mmio.data, RUN.mmio.data + length);
      this.exitViews[length] = view;
    }
    return view;
  }
}
