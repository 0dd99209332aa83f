// "Would this connection be captured, where would it go, and who decides?"
// Walks the same decisions as the capture programs and the node proxy, from
// the agent's current state, without opening anything.
import { endpointTargetPort, type Workload } from '../model/resources';
import type { PolicySet } from '../proxy/authorization';
import { authorizeConnection, peerOf } from '../proxy/connection-decision';
import type { EndpointStats } from '../proxy/endpoint-picker';
import { endpointKey } from '../proxy/endpoint-picker';
import type { ServiceIndex } from '../proxy/service-index';

export interface TraceStep {
  step: string;
  result: string;
}

export interface TraceCandidate {
  endpoint: string;
  workload: string;
  node: string;
  ready: boolean;
  ejectedForMs: number;
  activeConnections: number;
  allowed: boolean;
  policy?: string;
  reason: string;
}

export interface Trace {
  from: string;
  to: string;
  captured: boolean;
  service?: string;
  steps: TraceStep[];
  candidates: TraceCandidate[];
  verdict: string;
}

export interface TraceInputs {
  node: string;
  workloads: Iterable<Workload>;
  index: ServiceIndex;
  policies: PolicySet;
  endpoints: EndpointStats;
  /** Uids of workloads whose netns is in the enrollment map now. */
  enrolled: Set<string>;
}

/**
 * What the data path does with a connection from pod `from` (namespace/name)
 * to `to` (IP:PORT), step by step: capture, service, endpoint candidates and
 * the policy verdict with its deciding rule, from the same decision
 * functions the proxy calls (connection-decision.ts). Never throws: a step
 * that cannot be taken is reported in the result.
 */
export function trace(from: string, to: string, inputs: TraceInputs): Trace {
  const steps: TraceStep[] = [];
  const result: Trace = { from, to, captured: false, steps, candidates: [], verdict: '' };
  const [ns, name] = from.split('/');
  const source = [...inputs.workloads].find((w) => w.namespace === ns && w.name === name);
  const m = /^(.+):(\d+)$/.exec(to);
  if (!m) {
    result.verdict = `--to must be IP:PORT (got ${JSON.stringify(to)})`;
    return result;
  }
  const [, address, portText] = m;
  const port = Number(portText);
  if (!source) {
    steps.push({ step: 'source', result: `no workload ${from} is known to this agent` });
    result.verdict = 'unknown source';
    return result;
  }
  steps.push({ step: 'source', result: `${from} on ${source.node}, identity ${source.identity || '(none)'}` });
  if (source.node !== inputs.node) {
    steps.push({ step: 'capture', result: `${from} runs on ${source.node}; ask that node's agent` });
    result.verdict = 'not on this node';
    return result;
  }
  if (!source.captured) {
    steps.push({ step: 'capture', result: 'not in the mesh (namespace not labelled sluice.dev/mesh=enabled, or pod opted out): connect4 leaves it alone' });
    result.verdict = 'not captured: the connection goes directly to its destination';
    return result;
  }
  if (!inputs.enrolled.has(source.uid)) {
    steps.push({ step: 'capture', result: 'in the mesh but not enrolled yet (its network namespace has not been reported by the CNI step)' });
    result.verdict = 'not captured yet';
    return result;
  }
  const target = inputs.index.target(address, port);
  if (!target) {
    steps.push({ step: 'capture', result: `enrolled, but ${to} is not a known service VIP:port: connect4 leaves it alone` });
    result.verdict = 'not captured: the connection goes directly to its destination';
    return result;
  }
  result.captured = true;
  result.service = `${target.service.namespace}/${target.service.name}`;
  steps.push({ step: 'capture', result: `enrolled; ${to} is service ${result.service} port ${target.port.port} -> redirected to the node proxy` });
  // The same peer the proxy builds (same node) and the destination agent
  // rebuilds from the tunnel (cross node): identity, namespace, pod address.
  const peer = peerOf(source, source.ips[0] ?? '');
  const now = Date.now();
  for (const e of target.service.endpoints) {
    // As the proxy: each endpoint's own target port; an endpoint without this port is no candidate.
    const targetPort = endpointTargetPort(e, target.port);
    if (targetPort === undefined) continue;
    const dest = inputs.index.workload(e.workloadUid);
    const decision = authorizeConnection(inputs.policies, dest, target.service.namespace, peer, targetPort);
    const key = endpointKey(e.address, targetPort);
    result.candidates.push({
      endpoint: key,
      workload: dest ? `${dest.namespace}/${dest.name}` : e.workloadUid,
      node: e.node,
      ready: e.ready,
      ejectedForMs: inputs.endpoints.ejected(key, now) ? inputs.endpoints.snapshot(now).find((s) => s.endpoint === key)?.ejectedForMs ?? 0 : 0,
      activeConnections: inputs.endpoints.active(key),
      allowed: decision.allowed,
      policy: decision.policy,
      reason: decision.reason,
    });
  }
  const usable = result.candidates.filter((c) => c.ready && c.allowed);
  steps.push({
    step: 'endpoints',
    result: `${target.service.endpoints.length} endpoint(s), ${result.candidates.filter((c) => c.ready).length} ready, ${usable.length} ready and allowed; chosen per connection by least request (power of two choices)`,
  });
  if (target.service.endpoints.length === 0) result.verdict = 'captured, then reset: the service has no endpoints';
  else if (usable.length === 0) {
    const denied = result.candidates.find((c) => !c.allowed);
    result.verdict = denied ? `captured, then denied: ${denied.reason}` : 'captured, then reset: no endpoint is ready';
  } else result.verdict = `captured and allowed: relayed to one of ${usable.map((c) => c.endpoint).join(', ')}`;
  return result;
}
