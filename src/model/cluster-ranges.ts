// The cluster's address ranges: where service cluster IPs come from, and the
// pod and node ranges they must never reach into. A Service whose clusterIP
// is a pod's address would have enrolled clients' connections to that pod
// captured and answered by the Service's endpoints instead.
import { cidrContains, parseCidr, parseIp, type Cidr, type IpAddress } from './ip-match';

export const DEFAULT_SERVICE_CIDR = '10.96.0.0/12';
export const DEFAULT_POD_CIDR = '10.244.0.0/16';

/** kube-apiserver refuses a --service-cluster-ip-range of more than 2^20 addresses. */
const MAX_SERVICE_CIDR_HOST_BITS = 20;

export interface NamedCidr {
  /** As configured, for messages: "10.96.0.0/12". */
  text: string;
  cidr: Cidr;
}

export interface ClusterRanges {
  /** One per IP family at most (dual-stack), like --service-cluster-ip-range. */
  service: NamedCidr[];
  pod: NamedCidr[];
  /** Node addresses; empty when not configured. */
  node: NamedCidr[];
}

export interface ClusterRangeFlags {
  /** Comma-separated CIDRs, e.g. "10.96.0.0/12" or "10.96.0.0/12,fd00:10:96::/108". */
  serviceCidr: string;
  podCidr: string;
  /** Comma-separated CIDRs, or '' for none. */
  nodeCidrs: string;
}

function parseList(flag: string, text: string): NamedCidr[] | string {
  const out: NamedCidr[] = [];
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const cidr = part.includes('/') ? parseCidr(part) : undefined;
    if (!cidr) return `${flag}: not a CIDR (got ${JSON.stringify(part)})`;
    out.push({ text: part, cidr });
  }
  return out;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, { family: b.family, words: b.words }) || cidrContains(b, { family: a.family, words: a.words });
}

/**
 * Parses and checks the configured ranges, as kube-apiserver checks
 * --service-cluster-ip-range (cmd/kube-apiserver/app/options/validation.go):
 * one or two service CIDRs of different families, each at most 2^20
 * addresses, and none overlapping a pod or node range. Returns the reason
 * when the flags are unusable, naming the flag.
 */
export function parseClusterRanges(flags: ClusterRangeFlags): ClusterRanges | string {
  const service = parseList('--service-cidr', flags.serviceCidr);
  if (typeof service === 'string') return service;
  const pod = parseList('--pod-cidr', flags.podCidr);
  if (typeof pod === 'string') return pod;
  const node = parseList('--node-cidrs', flags.nodeCidrs);
  if (typeof node === 'string') return node;
  if (service.length === 0) return '--service-cidr: at least one CIDR is required';
  if (service.length > 2 || (service.length === 2 && service[0].cidr.family === service[1].cidr.family)) {
    return `--service-cidr: at most one CIDR per IP family (got ${JSON.stringify(flags.serviceCidr)})`;
  }
  for (const s of service) {
    const hostBits = (s.cidr.family === 4 ? 32 : 128) - s.cidr.prefixLength;
    if (hostBits > MAX_SERVICE_CIDR_HOST_BITS) {
      return `--service-cidr: ${s.text} is too large; for ${s.cidr.family === 4 ? 32 : 128}-bit addresses, the mask must be >= ${(s.cidr.family === 4 ? 32 : 128) - MAX_SERVICE_CIDR_HOST_BITS}`;
    }
    for (const [flag, list] of [['--pod-cidr', pod], ['--node-cidrs', node]] as const) {
      const clash = list.find((other) => overlaps(s.cidr, other.cidr));
      if (clash) return `--service-cidr: ${s.text} overlaps ${flag} ${clash.text}`;
    }
  }
  return { service, pod, node };
}

/** The defaults of sluice-control's flags: 10.96.0.0/12 for services, 10.244.0.0/16 for pods, no node ranges. */
export function defaultClusterRanges(): ClusterRanges {
  return parseClusterRanges({ serviceCidr: DEFAULT_SERVICE_CIDR, podCidr: DEFAULT_POD_CIDR, nodeCidrs: '' }) as ClusterRanges;
}

/**
 * A cluster IP as Kubernetes accepts one (IsValidIP): a plain IPv4 dotted
 * quad without leading zeros, or an IPv6 address that is not an IPv4-mapped
 * spelling (one address, one spelling). undefined when it is none of these.
 */
export function parseClusterIP(value: string): IpAddress | undefined {
  if (value.length > 45) return undefined;
  const ip = parseIp(value);
  if (!ip) return undefined;
  if (value.includes(':') && ip.family === 4) return undefined;
  return ip;
}

function isFirst(cidr: Cidr, ip: IpAddress): boolean {
  return ip.words.every((w, i) => w === cidr.words[i]);
}

function isLast(cidr: Cidr, ip: IpAddress): boolean {
  return ip.words.every((w, i) => w === (cidr.words[i] | ~cidr.masks[i]) >>> 0);
}

/**
 * Why `value` cannot be a Service's cluster IP, or undefined when it can.
 * Mirrors Kubernetes: the Service clusterIP validation in
 * pkg/apis/core/validation (a valid IP) and the allocator in
 * pkg/registry/core/service/ipallocator (inside the service range, not its
 * network address, and for IPv4 not its broadcast address). sluice also
 * refuses any address inside a pod or node range, whatever the service
 * range says: such an address belongs to a workload or a node.
 */
export function clusterIPProblem(value: string, ranges: ClusterRanges): string | undefined {
  const ip = parseClusterIP(value);
  if (!ip) return `not an IP address (got ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)})`;
  const taken = [...ranges.pod.map((r) => ['pod', r] as const), ...ranges.node.map((r) => ['node', r] as const)].find(([, r]) => cidrContains(r.cidr, ip));
  if (taken) return `${value} is inside the ${taken[0]} range ${taken[1].text}; a cluster IP must never be a pod's or node's address`;
  const range = ranges.service.find((r) => cidrContains(r.cidr, ip));
  const valid = ranges.service.map((r) => r.text).join(', ');
  if (!range) return `provided IP is not in the valid range. The range of valid IPs is ${valid} (got ${JSON.stringify(value)})`;
  if (isFirst(range.cidr, ip)) return `${value} is the network address of ${range.text}, which is never allocated`;
  if (ip.family === 4 && isLast(range.cidr, ip)) return `${value} is the broadcast address of ${range.text}, which is never allocated`;
  return undefined;
}

/** True when `value` is a valid IP inside one of `ranges`. */
export function inRanges(value: string, ranges: NamedCidr[]): boolean {
  const ip = parseIp(value);
  return ip !== undefined && ranges.some((r) => cidrContains(r.cidr, ip));
}
