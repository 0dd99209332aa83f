// IPv4/IPv6 addresses and CIDR blocks as 32-bit words, parsed once, so that a
// membership test is a few integer comparisons.
//
// IPv4-mapped IPv6 (::ffff:a.b.c.d) is folded into IPv4, both for addresses
// (a dual-stack socket reports IPv4 peers that way) and for blocks of prefix
// length >= 96, so either spelling of a block matches either spelling of an
// address. Otherwise families never match each other (::/0 does not contain
// 10.0.0.1), as in Envoy.

export interface IpAddress {
  family: 4 | 6;
  /** One word for IPv4, four for IPv6, most significant first, unsigned. */
  words: number[];
}

export interface Cidr {
  family: 4 | 6;
  /** The network: address words with the host bits cleared. */
  words: number[];
  masks: number[];
  prefixLength: number;
}

const MAPPED_PREFIX = '::ffff:';
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

/** Dotted quad from `start` to the end of `s`; a character loop, as this runs once per connection. */
function parseIpv4Word(s: string, start = 0): number | undefined {
  let word = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (digits === 0 || dots === 3) return undefined;
      word = word * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 0x30 && c <= 0x39) {
      // Leading zeros are refused: some stacks read them as octal.
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (c - 0x30);
      if (octet > 255) return undefined;
      digits++;
    } else return undefined;
  }
  if (dots !== 3 || digits === 0) return undefined;
  return word * 256 + octet;
}

function parseIpv6Groups(s: string): number[] | undefined {
  let text = s;
  const dottedTail: number[] = [];
  // A dotted IPv4 may end the address ("::ffff:10.0.0.1"): it is the last two groups.
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    const v4 = parseIpv4Word(text.slice(lastColon + 1));
    if (lastColon < 0 || v4 === undefined) return undefined;
    dottedTail.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = hexGroups(halves[0]);
  const rest = halves.length === 2 ? hexGroups(halves[1]) : [];
  if (head === undefined || rest === undefined) return undefined;
  const explicit = head.length + rest.length + dottedTail.length;
  if (halves.length === 1) return explicit === 8 ? [...head, ...dottedTail] : undefined;
  // "::" stands for at least one zero group.
  if (explicit > 7) return undefined;
  return [...head, ...new Array<number>(8 - explicit).fill(0), ...rest, ...dottedTail];
}

function hexGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  for (const g of text.split(':')) {
    if (!HEX_GROUP.test(g)) return undefined;
    groups.push(parseInt(g, 16));
  }
  return groups;
}

function parseFamily(s: string): IpAddress | undefined {
  if (s.includes(':')) {
    const groups = parseIpv6Groups(s);
    if (!groups) return undefined;
    const words = [0, 1, 2, 3].map((i) => groups[2 * i] * 0x10000 + groups[2 * i + 1]);
    return { family: 6, words };
  }
  const word = parseIpv4Word(s);
  return word === undefined ? undefined : { family: 4, words: [word] };
}

function isIpv4Mapped(a: IpAddress): boolean {
  return a.family === 6 && a.words[0] === 0 && a.words[1] === 0 && a.words[2] === 0xffff;
}

/** Parses "10.0.0.1", "2001:db8::1" or "::ffff:10.0.0.1" (as IPv4). Zone ids ("%eth0") are refused. */
export function parseIp(s: string): IpAddress | undefined {
  // Fast path: how a dual-stack socket reports every IPv4 peer.
  if (s.startsWith(MAPPED_PREFIX)) {
    const v4 = parseIpv4Word(s, MAPPED_PREFIX.length);
    if (v4 !== undefined) return { family: 4, words: [v4] };
  }
  const a = parseFamily(s);
  if (a && isIpv4Mapped(a)) return { family: 4, words: [a.words[3]] };
  return a;
}

function maskWord(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * Parses "10.0.0.0/8", "2001:db8::/32" or a single address (a /32 or /128).
 * Host bits are allowed and ignored ("10.0.0.1/8" is 10.0.0.0/8), as in Istio.
 */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  const address = parseFamily(slash < 0 ? s : s.slice(0, slash));
  if (!address) return undefined;
  const maxLength = address.family === 4 ? 32 : 128;
  let prefixLength = maxLength;
  if (slash >= 0) {
    const text = s.slice(slash + 1);
    if (!PREFIX_LENGTH.test(text)) return undefined;
    prefixLength = Number(text);
    if (prefixLength > maxLength) return undefined;
  }
  let { family, words } = address;
  if (isIpv4Mapped(address) && prefixLength >= 96) {
    family = 4;
    words = [words[3]];
    prefixLength -= 96;
  }
  const masks = words.map((_, i) => maskWord(prefixLength - 32 * i));
  return { family, words: words.map((w, i) => (w & masks[i]) >>> 0), masks, prefixLength };
}

/** Whether the address lies in the CIDR; false when their families differ. */
export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  if (cidr.family !== address.family) return false;
  for (let i = 0; i < cidr.words.length; i++) {
    if ((address.words[i] & cidr.masks[i]) >>> 0 !== cidr.words[i]) return false;
  }
  return true;
}
