// A typed view of one kernel map: keys and values go through their codecs.
import { addon, type MapInfo } from '../native/bpf-addon';

export interface Codec<T> {
  size: number;
  encode(v: T): Buffer;
  decode(b: Buffer, offset?: number): T;
}

/**
 * One pinned kernel map with its key and value codecs. Throws at
 * construction when the kernel's key or value size differs from the codecs'.
 */
export class BpfMap<K, V> {
  constructor(
    readonly info: MapInfo,
    private readonly keyCodec: Codec<K>,
    private readonly valueCodec: Codec<V>,
  ) {
    if (info.keySize !== keyCodec.size || info.valueSize !== valueCodec.size) {
      throw new Error(
        `map ${info.name}: layout mismatch, kernel has key ${info.keySize}/value ${info.valueSize} bytes, codec ${keyCodec.size}/${valueCodec.size}`,
      );
    }
  }

  get name(): string {
    return this.info.name;
  }

  /** The value at key, or undefined when there is none. Errors name the map (`map sluice_vips: map lookup: ...`). */
  lookup(key: K): V | undefined {
    const v = this.named(() => addon().mapLookup(this.info.fd, this.keyCodec.encode(key), this.info.valueSize));
    return v ? this.valueCodec.decode(v) : undefined;
  }

  update(key: K, value: V): void {
    this.named(() => addon().mapUpdate(this.info.fd, this.keyCodec.encode(key), this.valueCodec.encode(value)));
  }

  updateRaw(key: Buffer, value: Buffer): void {
    this.named(() => addon().mapUpdate(this.info.fd, key, value));
  }

  /** False when there was no such key. */
  delete(key: K): boolean {
    return this.named(() => addon().mapDelete(this.info.fd, this.keyCodec.encode(key)));
  }

  deleteRaw(key: Buffer): boolean {
    return this.named(() => addon().mapDelete(this.info.fd, key));
  }

  /** Raw entries: keys and values as buffers, for diffing without decoding. */
  entriesRaw(): { key: Buffer; value: Buffer }[] {
    const { keys, values, count } = this.named(() => addon().mapEntries(this.info.fd, this.info.keySize, this.info.valueSize));
    const out: { key: Buffer; value: Buffer }[] = [];
    for (let i = 0; i < count; i++) {
      out.push({
        key: keys.subarray(i * this.info.keySize, (i + 1) * this.info.keySize),
        value: values.subarray(i * this.info.valueSize, (i + 1) * this.info.valueSize),
      });
    }
    return out;
  }

  entries(): { key: K; value: V }[] {
    return this.entriesRaw().map((e) => ({ key: this.keyCodec.decode(e.key), value: this.valueCodec.decode(e.value) }));
  }

  /**
   * Runs one operation of the addon; its error (a NativeError: code, errno,
   * op kept) gets the map's name in front of its message, since the addon
   * knows only the descriptor.
   */
  private named<T>(op: () => T): T {
    try {
      return op();
    } catch (err) {
      if (err instanceof Error && !err.message.startsWith(`map ${this.info.name}: `)) err.message = `map ${this.info.name}: ${err.message}`;
      throw err;
    }
  }
}
