// Endpoint choice: power of two random choices by active connections
// ("least request"), skipping endpoints already tried for this connection and
// endpoints that failed to connect a moment ago (passive ejection).
import { endpointTargetPort, type Endpoint, type ServicePort } from '../model/resources';

export interface EndpointHealth {
  /** Active proxied connections per endpoint address:port. */
  active(key: string): number;
  /** True while the endpoint is ejected after connect failures. */
  ejected(key: string, now: number): boolean;
}

export function endpointKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** The target port of `e` for `port`: a ServicePort resolves per endpoint, a number is every endpoint's. */
function portOn(e: Endpoint, port: ServicePort | number): number | undefined {
  return typeof port === 'number' ? port : endpointTargetPort(e, port);
}

/**
 * Picks an endpoint among the ready ones not in `exclude` that serve `port`
 * (a ServicePort, whose target port may differ per endpoint, or one target
 * port for all). Health keys are endpointKey(address, that endpoint's
 * target port). Ejected endpoints are used only when nothing else is left
 * (better a likely failure than none).
 */
export function pickEndpoint(
  endpoints: readonly Endpoint[],
  port: ServicePort | number,
  exclude: ReadonlySet<string>,
  health: EndpointHealth,
  now: number,
  random: () => number = Math.random,
): Endpoint | undefined {
  const candidates: Endpoint[] = [];
  const ejected: Endpoint[] = [];
  for (const e of endpoints) {
    const targetPort = portOn(e, port);
    if (!e.ready || targetPort === undefined) continue;
    const key = endpointKey(e.address, targetPort);
    if (exclude.has(key)) continue;
    (health.ejected(key, now) ? ejected : candidates).push(e);
  }
  const pool = candidates.length > 0 ? candidates : ejected;
  if (pool.length === 0) return undefined;
  if (pool.length === 1) return pool[0];
  const i = Math.floor(random() * pool.length);
  let j = Math.floor(random() * (pool.length - 1));
  if (j >= i) j++;
  const a = pool[i];
  const b = pool[j];
  return health.active(endpointKey(a.address, portOn(a, port)!)) <= health.active(endpointKey(b.address, portOn(b, port)!)) ? a : b;
}

/** Tracks active connections and connect failures per endpoint. */
export class EndpointStats implements EndpointHealth {
  private readonly activeCount = new Map<string, number>();
  private readonly ejectedUntil = new Map<string, number>();
  private readonly failures = new Map<string, number>();

  constructor(
    private readonly baseEjectionMs = 1000,
    private readonly maxEjectionMs = 30000,
  ) {}

  active(key: string): number {
    return this.activeCount.get(key) ?? 0;
  }

  ejected(key: string, now: number): boolean {
    const until = this.ejectedUntil.get(key);
    return until !== undefined && until > now;
  }

  opened(key: string): void {
    this.activeCount.set(key, this.active(key) + 1);
  }

  closed(key: string): void {
    const n = this.active(key) - 1;
    if (n <= 0) this.activeCount.delete(key);
    else this.activeCount.set(key, n);
  }

  connectSucceeded(key: string): void {
    this.failures.delete(key);
    this.ejectedUntil.delete(key);
  }

  /** Each consecutive failure doubles the ejection time, up to the maximum. */
  connectFailed(key: string, now: number): void {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    this.ejectedUntil.set(key, now + Math.min(this.maxEjectionMs, this.baseEjectionMs * 2 ** (n - 1)));
  }

  snapshot(now: number): { endpoint: string; active: number; ejectedForMs: number }[] {
    const keys = new Set([...this.activeCount.keys(), ...this.ejectedUntil.keys()]);
    return [...keys].map((k) => ({ endpoint: k, active: this.active(k), ejectedForMs: Math.max(0, (this.ejectedUntil.get(k) ?? 0) - now) }));
  }
}
