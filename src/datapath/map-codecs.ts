// Byte codecs for the structs of bpf/include/sluice_maps.h. Each codec
// declares its layout; test/unit/map-codecs.test.ts compares it with the BTF
// of the compiled object, so a header change cannot silently skew them.
import * as net from 'node:net';

export interface FieldLayout {
  name: string;
  offset: number;
  size: number;
}

export interface StructCodec<T> {
  struct: string;
  size: number;
  fields: FieldLayout[];
  encode(v: T): Buffer;
  decode(b: Buffer, offset?: number): T;
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

export interface Enrollment {
  workloadId: number;
  flags: number;
}

export const enrollmentCodec: StructCodec<Enrollment> = {
  struct: 'sluice_enrollment',
  size: 8,
  fields: [
    { name: 'workload_id', offset: 0, size: 4 },
    { name: 'flags', offset: 4, size: 4 },
  ],
  encode(v) {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v.workloadId, 0);
    b.writeUInt32LE(v.flags, 4);
    return b;
  },
  decode(b, o = 0) {
    return { workloadId: b.readUInt32LE(o), flags: b.readUInt32LE(o + 4) };
  },
};

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

export interface VipKey {
  address: string;
  port: number;
  proto: number;
}

export const IPPROTO_TCP = 6;

export const vipKeyCodec: StructCodec<VipKey> = {
  struct: 'sluice_vip_key',
  size: 20,
  fields: [
    { name: 'addr', offset: 0, size: 16 },
    { name: 'port', offset: 16, size: 2 },
    { name: 'proto', offset: 18, size: 1 },
    { name: 'pad', offset: 19, size: 1 },
  ],
  encode(v) {
    const b = Buffer.alloc(20);
    encodeAddr16(v.address, b, 0);
    b.writeUInt16BE(v.port, 16);
    b[18] = v.proto;
    return b;
  },
  decode(b, o = 0) {
    return { address: decodeAddr16(b, o), port: b.readUInt16BE(o + 16), proto: b[o + 18] };
  },
};

export interface VipValue {
  serviceId: number;
  flags: number;
}

export const vipValueCodec: StructCodec<VipValue> = {
  struct: 'sluice_vip_value',
  size: 8,
  fields: [
    { name: 'service_id', offset: 0, size: 4 },
    { name: 'flags', offset: 4, size: 4 },
  ],
  encode(v) {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v.serviceId, 0);
    b.writeUInt32LE(v.flags, 4);
    return b;
  },
  decode(b, o = 0) {
    return { serviceId: b.readUInt32LE(o), flags: b.readUInt32LE(o + 4) };
  },
};

export interface OrigDst {
  address: string;
  port: number;
  serviceId: number;
  netnsCookie: bigint;
}

export const origDstCodec: StructCodec<OrigDst> = {
  struct: 'sluice_orig_dst',
  size: 32,
  fields: [
    { name: 'addr', offset: 0, size: 16 },
    { name: 'port', offset: 16, size: 2 },
    { name: 'pad', offset: 18, size: 2 },
    { name: 'service_id', offset: 20, size: 4 },
    { name: 'netns_cookie', offset: 24, size: 8 },
  ],
  encode(v) {
    const b = Buffer.alloc(32);
    encodeAddr16(v.address, b, 0);
    b.writeUInt16BE(v.port, 16);
    b.writeUInt32LE(v.serviceId, 20);
    b.writeBigUInt64LE(v.netnsCookie, 24);
    return b;
  },
  decode(b, o = 0) {
    return {
      address: decodeAddr16(b, o),
      port: b.readUInt16BE(o + 16),
      serviceId: b.readUInt32LE(o + 20),
      netnsCookie: b.readBigUInt64LE(o + 24),
    };
  },
};

export interface TupleKey {
  srcAddress: string;
  dstAddress: string;
  srcPort: number;
  dstPort: number;
}

export const tupleKeyCodec: StructCodec<TupleKey> = {
  struct: 'sluice_tuple_key',
  size: 36,
  fields: [
    { name: 'src_addr', offset: 0, size: 16 },
    { name: 'dst_addr', offset: 16, size: 16 },
    { name: 'src_port', offset: 32, size: 2 },
    { name: 'dst_port', offset: 34, size: 2 },
  ],
  encode(v) {
    const b = Buffer.alloc(36);
    encodeAddr16(v.srcAddress, b, 0);
    encodeAddr16(v.dstAddress, b, 16);
    b.writeUInt16BE(v.srcPort, 32);
    b.writeUInt16BE(v.dstPort, 34);
    return b;
  },
  decode(b, o = 0) {
    return {
      srcAddress: decodeAddr16(b, o),
      dstAddress: decodeAddr16(b, o + 16),
      srcPort: b.readUInt16BE(o + 32),
      dstPort: b.readUInt16BE(o + 34),
    };
  },
};

export interface DatapathConfig {
  proxyAddress: string;
  proxyPort: number;
}

export const configCodec: StructCodec<DatapathConfig> = {
  struct: 'sluice_config',
  size: 8,
  fields: [
    { name: 'proxy_addr4', offset: 0, size: 4 },
    { name: 'proxy_port', offset: 4, size: 2 },
    { name: 'pad', offset: 6, size: 2 },
  ],
  encode(v) {
    if (!net.isIPv4(v.proxyAddress)) throw new Error(`proxy address must be IPv4 (got ${JSON.stringify(v.proxyAddress)})`);
    const b = Buffer.alloc(8);
    v.proxyAddress.split('.').forEach((p, i) => (b[i] = Number(p)));
    b.writeUInt16BE(v.proxyPort, 4);
    return b;
  },
  decode(b, o = 0) {
    return { proxyAddress: `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`, proxyPort: b.readUInt16BE(o + 4) };
  },
};

export interface StrictEntry {
  allowedAddress: string;
  flags: number;
}

export const strictCodec: StructCodec<StrictEntry> = {
  struct: 'sluice_strict',
  size: 8,
  fields: [
    { name: 'allowed_saddr4', offset: 0, size: 4 },
    { name: 'flags', offset: 4, size: 4 },
  ],
  encode(v) {
    if (!net.isIPv4(v.allowedAddress)) throw new Error(`strict: allowed address must be IPv4 (got ${JSON.stringify(v.allowedAddress)})`);
    const b = Buffer.alloc(8);
    v.allowedAddress.split('.').forEach((p, i) => (b[i] = Number(p)));
    b.writeUInt32LE(v.flags, 4);
    return b;
  },
  decode(b, o = 0) {
    return { allowedAddress: `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`, flags: b.readUInt32LE(o + 4) };
  },
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
