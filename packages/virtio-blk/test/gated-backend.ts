import type { BlockBackend } from '../src/index.js';

/** One backend operation as the gated backend saw it. */
export interface Operation {
  readonly kind: 'read' | 'write' | 'flush' | 'discard' | 'writeZeroes';
  readonly offset: number;
  readonly length: number;
}

/**
 * Wraps a real backend to control when operations run and to record the
 * order of events: operations chosen by `hold` wait until the test releases
 * them; every start and end is logged. It changes timing only — the data path
 * is the wrapped backend's.
 */
export class GatedBackend implements BlockBackend {
  /** 'kind:start' / 'kind:end' events, in order, with the operation's offset. */
  readonly log: string[] = [];
  /** Which operations wait for release. */
  hold: (op: Operation) => boolean = () => false;
  private readonly waiting: { op: Operation; go: () => void }[] = [];
  private readonly inner: BlockBackend;

  constructor(inner: BlockBackend) {
    this.inner = inner;
  }

  get size(): number {
    return this.inner.size;
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  get canUnmap(): boolean {
    return this.inner.canUnmap;
  }

  /** Operations currently held. */
  get held(): readonly Operation[] {
    return this.waiting.map((w) => w.op);
  }

  /** Lets held operations whose index (in {@link held}) is listed run, in the order listed. */
  release(indices?: readonly number[]): void {
    const chosen = (indices ?? this.waiting.map((_, i) => i)).map((i) => this.waiting[i]);
    for (const w of chosen) {
      if (w === undefined) throw new Error('no such held operation');
      this.waiting.splice(this.waiting.indexOf(w), 1);
      w.go();
    }
  }

  read(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    return this.run({ kind: 'read', offset, length: total(buffers) }, async () => this.inner.read(offset, buffers));
  }

  write(offset: number, buffers: readonly Uint8Array[]): Promise<void> {
    return this.run({ kind: 'write', offset, length: total(buffers) }, () => this.inner.write(offset, buffers));
  }

  flush(): Promise<void> {
    return this.run({ kind: 'flush', offset: 0, length: 0 }, () => this.inner.flush());
  }

  discard(offset: number, length: number): Promise<void> {
    return this.run({ kind: 'discard', offset, length }, () => this.inner.discard(offset, length));
  }

  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.run({ kind: 'writeZeroes', offset, length }, () => this.inner.writeZeroes(offset, length, unmap));
  }

  resize(size: number): Promise<void> {
    if (this.inner.resize === undefined) throw new Error('the wrapped backend cannot be resized');
    return this.inner.resize(size);
  }

  private async run(op: Operation, body: () => Promise<void>): Promise<void> {
    if (this.hold(op)) await new Promise<void>((go) => this.waiting.push({ op, go }));
    this.log.push(`${op.kind}:start@${op.offset}`);
    try {
      await body();
    } finally {
      this.log.push(`${op.kind}:end@${op.offset}`);
    }
  }
}

function total(buffers: readonly Uint8Array[]): number {
  return buffers.reduce((n, b) => n + b.length, 0);
}

/** Resolves after pending I/O callbacks and immediates have run (the device publishes completions in an immediate). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
