// PeerAuthentication in the kernel: under STRICT, plaintext connection
// attempts into an enrolled pod are dropped by a tc filter on the pod's
// host-side interface unless they come from this node's own address (this
// proxy, the tunnel endpoint, the kubelet's probes); under PERMISSIVE they
// are let in and counted (plaintext_accepted); DISABLE attaches nothing.
// Security state changes only when the configuration says so: a pass in
// which some pod could not be resolved adds and updates but removes nothing.
import { STRICT_F_COUNT_ONLY, type StrictEntry } from '../datapath/map-codecs';
import { WHOLE_MAP, type KeyFailure, type ReconcileResult } from '../datapath/reconciler';
import { effectiveMtlsMode, type PeerAuthentication } from '../model/policy';
import type { Workload } from '../model/resources';
import type { StrictAttachOptions, StrictFilterState } from '../kernel/bpf-datapath';

const STRICT_MAP = 'sluice_strict';

/** What the enforcement needs of the kernel side (BpfDatapath). */
export interface StrictDatapath {
  applyStrict(entries: Map<number, StrictEntry>, options?: StrictAttachOptions): ReconcileResult;
  addStrict(entries: Map<number, StrictEntry>, options?: StrictAttachOptions): ReconcileResult;
  /** Where the filter of an interface stands: attached, being attached, or failed (why). */
  strictFilter(ifindex: number): StrictFilterState;
}

export interface PeerAuthenticationDeps {
  datapath: StrictDatapath;
  /** The pod's host-side interface, when the CNI step reported it. */
  hostInterfaceOf(uid: string): string | undefined;
  /** if_nametoindex in the node's netns; throws when the interface is unknown or the call fails. */
  interfaceIndex(name: string): number;
  /** The node's own address: plaintext from it is always let in. */
  allowedAddress: string;
}

/**
 * Keeps the strict map and the tc filters in line with the effective mode
 * of each enrolled pod; `notEnforced` names the STRICT pods whose filter is
 * not in place, and why.
 */
export class PeerAuthenticationEnforcer {
  /**
   * Host-side interface name -> ifindex, resolved once: under descriptor
   * pressure if_nametoindex fails, and a pod whose STRICT entry could not be
   * re-resolved must keep it (security state never changes on an error path).
   */
  private readonly ifindexCache = new Map<string, number>();
  /**
   * Pods under STRICT whose filter is not in place (uid -> why). sluice-cni is
   * not told such a pod is enrolled, so it does not start with STRICT open,
   * and the inbound capture refuses its plaintext (inbound-capture.ts).
   */
  notEnforced: ReadonlyMap<string, string> = new Map();

  constructor(private readonly deps: PeerAuthenticationDeps) {}

  /**
   * Makes the strict map and the filters follow the enrolled pods' effective
   * modes. Returns what changed and every error (each names the pod, or the
   * interface), also per key in `failures`. `options.retryFailed`: attach
   * again the filters whose last attempt failed (the map sync's retries).
   */
  apply(enrolled: Iterable<Workload>, peerAuthentications: readonly PeerAuthentication[], options: StrictAttachOptions = {}): ReconcileResult {
    const entries = new Map<number, StrictEntry>();
    const errors: string[] = [];
    const failures: KeyFailure[] = [];
    const strictIfindex = new Map<string, number>();
    const notEnforced = new Map<string, string>();
    const current = new Set<string>();
    for (const w of enrolled) {
      const mode = effectiveMtlsMode(w, peerAuthentications);
      const hostInterface = this.deps.hostInterfaceOf(w.uid);
      current.add(`${w.uid} ${hostInterface}`);
      if (mode === 'DISABLE') continue;
      if (!hostInterface) {
        if (mode === 'STRICT') {
          const why = `STRICT for ${w.namespace}/${w.name}: its host-side interface is unknown (the CNI step did not report it)`;
          errors.push(why);
          failures.push({ map: STRICT_MAP, key: `pod ${w.namespace}/${w.name}`, op: 'attach', error: 'its host-side interface is unknown (the CNI step did not report it)' });
          notEnforced.set(w.uid, why);
        }
        continue;
      }
      try {
        // Keyed by pod and name: a new pod reusing an interface name resolves afresh.
        const cacheKey = `${w.uid} ${hostInterface}`;
        let ifindex = this.ifindexCache.get(cacheKey);
        if (ifindex === undefined) {
          ifindex = this.deps.interfaceIndex(hostInterface);
          this.ifindexCache.set(cacheKey, ifindex);
        }
        entries.set(ifindex, { allowedAddress: this.deps.allowedAddress, flags: mode === 'STRICT' ? 0 : STRICT_F_COUNT_ONLY });
        if (mode === 'STRICT') strictIfindex.set(w.uid, ifindex);
      } catch (err) {
        errors.push(`${mode} for ${w.namespace}/${w.name}: ${(err as Error).message}`);
        failures.push({ map: STRICT_MAP, key: `pod ${w.namespace}/${w.name}`, op: 'attach', error: (err as Error).message });
        if (mode === 'STRICT') notEnforced.set(w.uid, `STRICT cannot be enforced: ${(err as Error).message}`);
      }
    }
    // Forget interfaces of pods that are gone (a new pod may reuse the name).
    for (const name of [...this.ifindexCache.keys()]) if (!current.has(name)) this.ifindexCache.delete(name);
    const result = this.write(entries, errors, failures, options);
    // An entry that could not be written lets plaintext through the filter.
    const unwritten = new Map(result.failures.filter((f) => f.op === 'update' && f.key.startsWith('ifindex ')).map((f) => [f.key, f.error]));
    for (const [uid, ifindex] of strictIfindex) {
      const filter = this.deps.datapath.strictFilter(ifindex);
      const unwrittenWhy = unwritten.get(`ifindex ${ifindex}`);
      // Until its filter is attached (a worker thread does it), a pod is not
      // enforced: sluice-cni waits for it, and the inbound capture refuses
      // its plaintext.
      if (filter.state === 'attaching') notEnforced.set(uid, 'STRICT is not enforced yet: its tc filter is being attached');
      else if (filter.state !== 'attached') notEnforced.set(uid, `STRICT cannot be enforced: ${filter.error}`);
      else if (unwrittenWhy !== undefined) notEnforced.set(uid, `STRICT cannot be enforced: its ${STRICT_MAP} entry could not be written: ${unwrittenWhy}`);
    }
    this.notEnforced = notEnforced;
    return result;
  }

  private write(entries: Map<number, StrictEntry>, errors: string[], failures: KeyFailure[], options: StrictAttachOptions): ReconcileResult {
    try {
      // Something could not be resolved: add and update, but remove nothing
      // this pass, so an error never turns STRICT off for a pod.
      const r = errors.length ? this.deps.datapath.addStrict(entries, options) : this.deps.datapath.applyStrict(entries, options);
      return { ...r, errors: [...errors, ...r.errors], failures: [...failures, ...r.failures] };
    } catch (err) {
      const error = (err as Error).message;
      return { map: STRICT_MAP, updated: 0, deleted: 0, unchanged: 0, errors: [...errors, `STRICT: ${error}`], failures: [...failures, { map: STRICT_MAP, key: WHOLE_MAP, op: 'update', error }] };
    }
  }
}
