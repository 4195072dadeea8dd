// Whose turn it is to write. Transactions on one connection take turns in call order; the one leaving may
// hand the next one bytes to write first (the end of its message), so that the end of message N and the
// commands of message N+1 leave in one write — one round trip per message (RFC 2920 §3.1).
export class WriteTurn {
  private busy = false;
  private readonly waiting: Array<(carry: Buffer[] | undefined) => void> = [];

  /** Resolves with the bytes the previous holder left to be written first, if any. */
  acquire(): Promise<Buffer[] | undefined> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Passes the turn on; returns false when nobody waits, and then the caller must write `carry` itself. */
  release(carry?: Buffer[]): boolean {
    const next = this.waiting.shift();
    if (next) {
      next(carry);
      return true;
    }
    this.busy = false;
    return false;
  }
}
