// Readiness as a list of named blockers: ready when none is left.
export class Readiness {
  private readonly pending = new Set<string>();

  constructor(blockers: string[]) {
    for (const b of blockers) this.pending.add(b);
  }

  done(blocker: string): void {
    this.pending.delete(blocker);
  }

  get ready(): boolean {
    return this.pending.size === 0;
  }

  blockers(): string[] {
    return [...this.pending];
  }
}
