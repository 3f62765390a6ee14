/** Collects a guest's console output and waits for text to appear in it. */
export class ConsoleWatcher {
  private text = '';
  private waiters: { pattern: RegExp; resolve: (match: RegExpMatchArray) => void }[] = [];
  private readonly decoder = new TextDecoder();

  /** Everything received so far. */
  get output(): string {
    return this.text;
  }

  /** The complete lines received so far, without carriage returns. */
  get lines(): string[] {
    const lines = this.text.replace(/\r/g, '').split('\n');
    lines.pop();
    return lines;
  }

  /** Feeds console bytes (pass this as the machine's `console`). */
  readonly write = (bytes: Uint8Array): void => {
    this.text += this.decoder.decode(bytes, { stream: true });
    this.waiters = this.waiters.filter((w) => {
      const m = this.text.match(w.pattern);
      if (m !== null) w.resolve(m);
      return m === null;
    });
  };

  /**
   * Resolves when the output matches `pattern`; rejects after `timeoutMs`
   * (a bound so that a broken guest fails the test instead of hanging it) or
   * when `abort` settles first.
   */
  waitFor(pattern: RegExp | string, timeoutMs: number, abort?: Promise<unknown>): Promise<RegExpMatchArray> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    const now = this.text.match(re);
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`console did not show ${re} within ${timeoutMs} ms; it shows:\n${this.text.slice(-2000)}`)), timeoutMs);
      const waiter = {
        pattern: re,
        resolve: (m: RegExpMatchArray) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      this.waiters.push(waiter);
      void abort?.then((value) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`the machine ended (${JSON.stringify(value)}) before the console showed ${re}; it shows:\n${this.text.slice(-2000)}`));
      });
    });
  }
}
