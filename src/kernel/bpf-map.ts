// A typed view of one kernel map: keys and values go through their codecs.
import { addon, type MapInfo } from '../native/bpf-addon';

export interface Codec<T> {
  size: number;
  encode(v: T): Buffer;
  decode(b: Buffer, offset?: number): T;
}

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

  lookup(key: K): V | undefined {
    const v = addon().mapLookup(this.info.fd, this.keyCodec.encode(key), this.info.valueSize);
    return v ? this.valueCodec.decode(v) : undefined;
  }

  update(key: K, value: V): void {
    addon().mapUpdate(this.info.fd, this.keyCodec.encode(key), this.valueCodec.encode(value));
  }

  updateRaw(key: Buffer, value: Buffer): void {
    addon().mapUpdate(this.info.fd, key, value);
  }

  delete(key: K): boolean {
    return addon().mapDelete(this.info.fd, this.keyCodec.encode(key));
  }

  deleteRaw(key: Buffer): boolean {
    return addon().mapDelete(this.info.fd, key);
  }

  /** Raw entries: keys and values as buffers, for diffing without decoding. */
  entriesRaw(): { key: Buffer; value: Buffer }[] {
    const { keys, values, count } = addon().mapEntries(this.info.fd, this.info.keySize, this.info.valueSize);
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
}
