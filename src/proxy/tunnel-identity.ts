// How the two ends of a tunnel name the destination's identity in TLS: the
// client asks for it by SNI (a hostname, so the SPIFFE ID is folded into
// one) and checks the URI SAN of what it gets; the server picks the
// certificate for that identity.
export interface TlsCredentials {
  keyPem: string;
  /** Leaf first, then the chain; the last one is the mesh root. */
  chainPem: string[];
}

/** spiffe://td/ns/shop/sa/web -> "web.shop.td.sluice" (what SNI can carry). */
export function sniFor(identity: string): string {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(identity);
  if (!m) throw new Error(`not a workload SPIFFE ID: ${identity}`);
  return `${m[3]}.${m[2]}.${m[1]}.sluice`;
}

export function identityFromSni(sni: string): string | undefined {
  const m = /^([^.]+)\.([^.]+)\.(.+)\.sluice$/.exec(sni);
  return m ? `spiffe://${m[3]}/ns/${m[2]}/sa/${m[1]}` : undefined;
}

/** The URI SAN of a peer certificate, as node:tls reports it ("URI:spiffe://..."). */
export function uriSanOf(subjectaltname: string | undefined): string | undefined {
  const uris = (subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:'));
  return uris.length === 1 ? uris[0].slice(4) : undefined;
}

/**
 * HTTP/2 flow-control windows for tunnels. Node's defaults (64 KiB per
 * stream and connection) stall a bulk stream on every round trip.
 */
export const TUNNEL_STREAM_WINDOW = 4 << 20;
export const TUNNEL_SESSION_WINDOW = 32 << 20;

/**
 * Header of an informational `100` answer to a CONNECT: the destination
 * queued the stream for the source pod's share of its budget, for at most
 * this many ms (then it answers 503). The source waits that long.
 */
export const QUEUED_HEADER = 'sluice-queued';
