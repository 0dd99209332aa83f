// A connection the node proxy holds, as the proxy records it and the admin
// API shows it (GET /connections, sluicectl connections): one declaration
// for both, so the view cannot drift from what the proxy knows.

/** One proxied connection. Times are epoch ms; byte counts are what the relay moved so far. */
export interface ProxiedConnection {
  /** The proxy's connection number, unique within one agent run. */
  id: number;
  /** The calling workload, "namespace/name". */
  source: string;
  /** The caller's "address:port". */
  sourceAddress: string;
  /** The address the caller dialled, "address:port" (a cluster IP, or a pod IP). */
  vip: string;
  /** "namespace/name" of the service, or "" for a pod dialled directly. */
  service: string;
  /** The endpoint chosen, "address:port" ("" while none is). */
  endpoint: string;
  state: 'connecting' | 'relaying';
  /** "plaintext (same node)", "mTLS to <identity>", or "plaintext" across nodes without tunnels. */
  security: string;
  startedAt: number;
  bytesFromClient: number;
  bytesFromEndpoint: number;
}
