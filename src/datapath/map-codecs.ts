// Byte codecs for the structs of bpf/include/sluice_maps.h. Each struct is
// one field table: the C member name, its offset, its kind (which fixes its
// size) and the property it carries. encode() and decode() walk that table,
// and test/unit/map-codecs.test.ts compares the same table (names, offsets,
// sizes) with the BTF of the compiled object, so a header change cannot skew
// the codecs silently.
import * as net from 'node:net';
import type { OriginalDestination } from '../model/resources';

/** One member of a C struct as BTF describes it. */
export interface FieldLayout {
  name: string;
  offset: number;
  size: number;
}

/** A struct's codec: its layout (checked against BTF) and the bytes it reads and writes. */
export interface StructCodec<T> {
  struct: string;
  size: number;
  fields: FieldLayout[];
  encode(v: T): Buffer;
  decode(b: Buffer, offset?: number): T;
}

/**
 * How a member is stored: `u16be` for ports (network byte order), `addr16`
 * for 16-byte addresses (IPv4 stored IPv4-mapped), `ipv4` for 4-byte IPv4
 * addresses, `pad` for bytes the agent leaves zero.
 */
type FieldKind = 'u8' | 'u16be' | 'u32le' | 'u64le' | 'addr16' | 'ipv4' | 'pad';

interface KindCodec {
  size: number;
  write(b: Buffer, at: number, value: unknown, what: string): void;
  read(b: Buffer, at: number): unknown;
}

const kinds: Record<Exclude<FieldKind, 'pad'>, KindCodec> = {
  u8: { size: 1, write: (b, at, v) => b.writeUInt8(v as number, at), read: (b, at) => b.readUInt8(at) },
  u16be: { size: 2, write: (b, at, v) => b.writeUInt16BE(v as number, at), read: (b, at) => b.readUInt16BE(at) },
  u32le: { size: 4, write: (b, at, v) => b.writeUInt32LE(v as number, at), read: (b, at) => b.readUInt32LE(at) },
  u64le: { size: 8, write: (b, at, v) => b.writeBigUInt64LE(v as bigint, at), read: (b, at) => b.readBigUInt64LE(at) },
  addr16: { size: 16, write: (b, at, v) => encodeAddr16(v as string, b, at), read: (b, at) => decodeAddr16(b, at) },
  ipv4: {
    size: 4,
    write(b, at, v, what) {
      if (typeof v !== 'string' || !net.isIPv4(v)) throw new Error(`${what} must be IPv4 (got ${JSON.stringify(v)})`);
      v.split('.').forEach((p, i) => (b[at + i] = Number(p)));
    },
    read: (b, at) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`,
  },
};

/** A row of a struct's field table. `prop` is the TypeScript property; pad rows have none. */
type FieldSpec<T> =
  | { name: string; offset: number; kind: Exclude<FieldKind, 'pad'>; prop: keyof T & string }
  | { name: string; offset: number; kind: 'pad'; size: number };

/**
 * Builds the codec of one struct from its field table. The table is the only
 * place offsets are written: encode, decode and the BTF check all read it.
 */
export function structCodec<T>(struct: string, size: number, table: FieldSpec<T>[]): StructCodec<T> {
  const fields = table.map((f) => ({ name: f.name, offset: f.offset, size: f.kind === 'pad' ? f.size : kinds[f.kind].size }));
  for (const f of fields) {
    if (f.offset + f.size > size) throw new Error(`${struct}.${f.name}: ends at byte ${f.offset + f.size}, past the struct's ${size} bytes`);
  }
  const data = table.filter((f): f is Extract<FieldSpec<T>, { prop: string }> => f.kind !== 'pad');
  return {
    struct,
    size,
    fields,
    encode(v: T): Buffer {
      const b = Buffer.alloc(size);
      for (const f of data) kinds[f.kind].write(b, f.offset, v[f.prop], `${struct}.${f.name}`);
      return b;
    },
    decode(b: Buffer, o = 0): T {
      const out = {} as Record<string, unknown>;
      for (const f of data) out[f.prop] = kinds[f.kind].read(b, o + f.offset);
      return out as T;
    },
  };
}

/** 16-byte address; IPv4 is stored IPv4-mapped. */
export function encodeAddr16(ip: string, into: Buffer, offset: number): void {
  if (net.isIPv4(ip)) {
    into.fill(0, offset, offset + 10);
    into[offset + 10] = 0xff;
    into[offset + 11] = 0xff;
    const parts = ip.split('.');
    for (let i = 0; i < 4; i++) into[offset + 12 + i] = Number(parts[i]);
    return;
  }
  if (net.isIPv6(ip)) {
    const words = expandIPv6(ip);
    for (let i = 0; i < 8; i++) into.writeUInt16BE(words[i], offset + 2 * i);
    return;
  }
  throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
}

/** Reads a 16-byte address; an IPv4-mapped one comes back as dotted IPv4. */
export function decodeAddr16(b: Buffer, offset: number): string {
  let mapped = b[offset + 10] === 0xff && b[offset + 11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[offset + i] !== 0) mapped = false;
  if (mapped) return `${b[offset + 12]}.${b[offset + 13]}.${b[offset + 14]}.${b[offset + 15]}`;
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(offset + 2 * i).toString(16));
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function expandIPv6(ip: string): number[] {
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const p = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((w) => parseInt(w, 16));
}

/** Value of the enrollment map. */
export interface Enrollment {
  workloadId: number;
  flags: number;
}

export const enrollmentCodec = structCodec<Enrollment>('sluice_enrollment', 8, [
  { name: 'workload_id', offset: 0, kind: 'u32le', prop: 'workloadId' },
  { name: 'flags', offset: 4, kind: 'u32le', prop: 'flags' },
]);

/** Key of the enrollment map: the netns cookie (u64, host order). */
export const netnsCookieCodec = {
  size: 8,
  encode(cookie: bigint): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(cookie);
    return b;
  },
  decode(b: Buffer, o = 0): bigint {
    return b.readBigUInt64LE(o);
  },
};

/** Key of the services map: one entry per (VIP, port, protocol). */
export interface VipKey {
  address: string;
  port: number;
  proto: number;
}

export const IPPROTO_TCP = 6;

export const vipKeyCodec = structCodec<VipKey>('sluice_vip_key', 20, [
  { name: 'addr', offset: 0, kind: 'addr16', prop: 'address' },
  { name: 'port', offset: 16, kind: 'u16be', prop: 'port' },
  { name: 'proto', offset: 18, kind: 'u8', prop: 'proto' },
  { name: 'pad', offset: 19, kind: 'pad', size: 1 },
]);

/** Value of the services map. */
export interface VipValue {
  serviceId: number;
  flags: number;
}

export const vipValueCodec = structCodec<VipValue>('sluice_vip_value', 8, [
  { name: 'service_id', offset: 0, kind: 'u32le', prop: 'serviceId' },
  { name: 'flags', offset: 4, kind: 'u32le', prop: 'flags' },
]);

/** The kernel's record of a captured connection: the OriginalDestination, plus the service id it matched. */
export interface OriginalDestinationRecord extends OriginalDestination {
  serviceId: number;
}

export const originalDestinationCodec = structCodec<OriginalDestinationRecord>('sluice_orig_dst', 32, [
  { name: 'addr', offset: 0, kind: 'addr16', prop: 'address' },
  { name: 'port', offset: 16, kind: 'u16be', prop: 'port' },
  { name: 'pad', offset: 18, kind: 'pad', size: 2 },
  { name: 'service_id', offset: 20, kind: 'u32le', prop: 'serviceId' },
  { name: 'netns_cookie', offset: 24, kind: 'u64le', prop: 'netnsCookie' },
]);

/** Key of the tuple map: the (peer, local) tuple the proxy sees on accept. */
export interface TupleKey {
  srcAddress: string;
  dstAddress: string;
  srcPort: number;
  dstPort: number;
}

export const tupleKeyCodec = structCodec<TupleKey>('sluice_tuple_key', 36, [
  { name: 'src_addr', offset: 0, kind: 'addr16', prop: 'srcAddress' },
  { name: 'dst_addr', offset: 16, kind: 'addr16', prop: 'dstAddress' },
  { name: 'src_port', offset: 32, kind: 'u16be', prop: 'srcPort' },
  { name: 'dst_port', offset: 34, kind: 'u16be', prop: 'dstPort' },
]);

/** The single entry of the config map: where captured connections are sent. */
export interface DatapathConfig {
  proxyAddress: string;
  proxyPort: number;
}

export const configCodec = structCodec<DatapathConfig>('sluice_config', 8, [
  { name: 'proxy_addr4', offset: 0, kind: 'ipv4', prop: 'proxyAddress' },
  { name: 'proxy_port', offset: 4, kind: 'u16be', prop: 'proxyPort' },
  { name: 'pad', offset: 6, kind: 'pad', size: 2 },
]);

/** Value of the strict map (key: ifindex of an enrolled pod's host-side interface). */
export interface StrictEntry {
  allowedAddress: string;
  flags: number;
}

export const strictCodec = structCodec<StrictEntry>('sluice_strict', 8, [
  { name: 'allowed_saddr4', offset: 0, kind: 'ipv4', prop: 'allowedAddress' },
  { name: 'flags', offset: 4, kind: 'u32le', prop: 'flags' },
]);

/**
 * Value of the inbound map (key: an enrolled pod's IPv4 address, see
 * ipv4KeyCodec): plaintext towards the pod from any address but
 * `allowedAddress` goes to the listener on `listenPort` in the pod's netns.
 */
export interface InboundEntry {
  allowedAddress: string;
  listenPort: number;
}

export const inboundCodec = structCodec<InboundEntry>('sluice_inbound', 8, [
  { name: 'allowed_saddr4', offset: 0, kind: 'ipv4', prop: 'allowedAddress' },
  { name: 'listen_port', offset: 4, kind: 'u16be', prop: 'listenPort' },
  { name: 'pad', offset: 6, kind: 'pad', size: 2 },
]);

/** An IPv4 address as a map key: 4 bytes in network order (the inbound map's key). */
export const ipv4KeyCodec = {
  size: 4,
  encode(ip: string): Buffer {
    if (!net.isIPv4(ip)) throw new Error(`map key must be IPv4 (got ${JSON.stringify(ip)})`);
    return Buffer.from(ip.split('.').map(Number));
  },
  decode: (b: Buffer, o = 0): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`,
};

/** Index of each per-CPU counter (enum sluice_counter). */
export const counterNames = [
  'connect_captured',
  'connect_not_enrolled',
  'connect_no_vip',
  'connect_errors',
  'tuple_recorded',
  'tuple_errors',
  'peername_rewritten',
  'connect_not_tcp',
  'strict_dropped',
  'plaintext_accepted',
  'connect_refused_no_endpoints',
  'inbound_redirected',
  'inbound_dropped',
] as const;

/** sluice_vip_value.flags: no ready endpoint, connect() is refused (ECONNREFUSED). */
export const VIP_F_NO_ENDPOINTS = 1;
/** sluice_vip_value.flags: a meshed pod's own address (key port 0: any port), captured so policy applies to it. */
export const VIP_F_WORKLOAD = 2;

/** sluice_strict.flags: let plaintext in but count it (PERMISSIVE). */
export const STRICT_F_COUNT_ONLY = 1;
export type CounterName = (typeof counterNames)[number];

export const u32KeyCodec = {
  size: 4,
  encode(i: number): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(i);
    return b;
  },
};
