// Map capacity as a first-class limit. A BPF hash map refuses inserts once
// full (E2BIG), which used to leave a service half installed. Resources are
// admitted whole or not at all, against the entries each one needs, before
// anything is written: a service that does not fit is rejected (the NACK
// names it and the map) and the last good state keeps serving.
export class MapCapacity {
  private readonly byKey = new Map<string, number>();
  private used = 0;
  /** Resources refused because they did not fit, since start. */
  rejected = 0;

  /** `map`: the BPF map's name (for messages); `capacity`: its max_entries. */
  constructor(
    readonly map: string,
    readonly capacity: number,
  ) {}

  /** Entries in use by admitted resources. */
  get entries(): number {
    return this.used;
  }

  /**
   * Admits `key` needing `needed` entries (replacing what it held), or
   * returns why not: "does not fit in map sluice_vips: needs 3 entries,
   * 1 of 262144 free". Nothing changes on refusal.
   */
  admit(key: string, needed: number): string | undefined {
    const held = this.byKey.get(key) ?? 0;
    const free = this.capacity - this.used + held;
    if (needed > free) {
      this.rejected++;
      return `does not fit in map ${this.map}: needs ${needed} entries, ${free} of ${this.capacity} free`;
    }
    this.used += needed - held;
    if (needed > 0) this.byKey.set(key, needed);
    else this.byKey.delete(key);
    return undefined;
  }

  /** Frees what `key` held. */
  release(key: string): void {
    this.used -= this.byKey.get(key) ?? 0;
    this.byKey.delete(key);
  }
}
