import { describe, expect, it } from 'vitest';
import { Uart16550 } from './uart16550.js';

function uart(): { u: Uart16550; out: number[]; irq: boolean[]; r: (offset: number) => number; w: (offset: number, value: number) => void } {
  const out: number[] = [];
  const irq: boolean[] = [];
  const u = new Uart16550({ transmit: (b) => out.push(b), irq: (level) => irq.push(level) });
  const byte = new Uint8Array(1);
  return {
    u,
    out,
    irq,
    r: (offset) => {
      u.read(offset, byte);
      return byte[0] as number;
    },
    w: (offset, value) => u.write(offset, Uint8Array.of(value)),
  };
}

describe('16550A UART', () => {
  it('passes the loopback test of the Linux 8250 probe (MCR loop with RTS|OUT2 reads MSR 0x90)', () => {
    const { r, w, out } = uart();
    w(4, 0x10 | 0x0a);
    expect(r(6) & 0xf0).toBe(0x90);
    w(0, 0x5a);
    expect(out).toEqual([]);
    expect(r(5) & 1).toBe(1);
    expect(r(0)).toBe(0x5a);
    w(4, 0);
    expect(r(6)).toBe(0xb0);
  });

  it('reports FIFOs in IIR once enabled, and keeps the divisor behind DLAB', () => {
    const { r, w } = uart();
    expect(r(2) & 0xc0).toBe(0);
    w(2, 0x01);
    expect(r(2) & 0xc0).toBe(0xc0);
    w(3, 0x80);
    w(0, 0x0c);
    w(1, 0x00);
    expect(r(0)).toBe(0x0c);
    w(3, 0x03);
    expect(r(1)).toBe(0);
    expect(r(3)).toBe(0x03);
  });

  it('raises THRE when enabled, clears it on an IIR read, and raises it again after each byte sent', () => {
    const { r, w, irq, out } = uart();
    w(1, 0x02);
    expect(irq).toEqual([true]);
    expect(r(2) & 0x0f).toBe(0x02);
    expect(irq).toEqual([true, false]);
    expect(r(2) & 0x0f).toBe(0x01);
    w(0, 0x41);
    expect(out).toEqual([0x41]);
    expect(irq).toEqual([true, false, true]);
  });

  it('interrupts for received data until it is read, and reports an overrun past its buffer', () => {
    const { u, r, w, irq } = uart();
    w(1, 0x01 | 0x04);
    expect(u.receive(Uint8Array.of(1, 2))).toBe(2);
    expect(irq).toEqual([true]);
    expect(r(2) & 0x0f).toBe(0x04);
    expect([r(0), r(0)]).toEqual([1, 2]);
    expect(irq).toEqual([true, false]);
    expect(u.receive(new Uint8Array(5000))).toBe(4096);
    expect(r(2) & 0x0f).toBe(0x06);
    expect(r(5) & 0x02).toBe(0x02);
    expect(r(5) & 0x02).toBe(0);
  });

  it('ignores accesses wider than a byte', () => {
    const { u, out } = uart();
    u.write(0, Uint8Array.of(0x41, 0x42));
    const wide = new Uint8Array(2).fill(0x55);
    u.read(5, wide);
    expect(out).toEqual([]);
    expect([...wide]).toEqual([0, 0]);
  });
});
