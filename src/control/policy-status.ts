// The status sluice-control writes on its policy objects (AuthorizationPolicy,
// PeerAuthentication): an Accepted condition, True when the policy is served,
// False with the reason when translation rejected it, and an Event when that
// flips, so that `kubectl get authorizationpolicies` (printer column
// Accepted) and `kubectl describe` tell the operator what became of it. Written only when it differs
// from what the object already carries, so the watch event a write causes
// does not cause another write.
import type { Logger } from 'pino';
import type { SourcedObject } from './kubernetes-objects';
import { objectName } from './kubernetes-objects';
import { SECURITY_GROUP, WATCHED_RESOURCES } from './kubernetes-resources';
import type { TranslationError } from './translate';

/** A Kubernetes condition (metav1.Condition), as the CRDs' status schema holds it. */
export interface Condition {
  type: 'Accepted';
  status: 'True' | 'False';
  /** UpperCamelCase: Accepted, or Invalid when translation rejected the object. */
  reason: 'Accepted' | 'Invalid';
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

/** The status subresource of a policy object: the generation it describes and its Accepted condition. */
export interface PolicyStatus {
  observedGeneration: number;
  conditions: Condition[];
}

/** What a policy object's status should say, given the translation errors of the publish that read it. */
export function desiredPolicyStatus(object: SourcedObject['object'], errors: TranslationError[], now: string): PolicyStatus {
  const name = objectName(object);
  const generation = typeof object.metadata?.generation === 'number' ? object.metadata.generation : 0;
  const mine = errors.filter((e) => e.object === name);
  const accepted = mine.length === 0;
  const message = accepted ? 'served to every agent' : mine.map((e) => `${e.field}: ${e.reason}`).join('; ').slice(0, 32_000);
  const previous = (object.status as PolicyStatus | undefined)?.conditions?.find((c) => c.type === 'Accepted');
  const status = accepted ? 'True' : 'False';
  return {
    observedGeneration: generation,
    conditions: [
      {
        type: 'Accepted',
        status,
        reason: accepted ? 'Accepted' : 'Invalid',
        message,
        observedGeneration: generation,
        // Changes only when the status flips, as the condition convention asks.
        lastTransitionTime: previous?.status === status && previous.lastTransitionTime ? previous.lastTransitionTime : now,
      },
    ],
  };
}

/**
 * A core/v1 Event about a policy object, as `kubectl describe` shows it:
 * Warning "Rejected" when it stops being served, Normal "Accepted" when it
 * is served again (or for the first time after a rejection).
 */
export interface PolicyEvent {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { generateName: string; namespace: string };
  involvedObject: { apiVersion: string; kind: string; name: string; namespace: string; uid?: string; resourceVersion?: string };
  reason: 'Rejected' | 'Accepted';
  message: string;
  type: 'Warning' | 'Normal';
  source: { component: 'sluice-control' };
  reportingComponent: 'sluice-control';
  reportingInstance: string;
  firstTimestamp: string;
  lastTimestamp: string;
  count: 1;
}

/** The Event for a policy whose Accepted condition became `status`; undefined when nothing happened worth one. */
export function policyEvent(object: SourcedObject['object'], previous: Condition | undefined, next: Condition, now: string, instance: string): PolicyEvent | undefined {
  // A first Accepted is not news; a first rejection, and every flip, are.
  if (previous?.status === next.status || (!previous && next.status === 'True')) return undefined;
  const meta = object.metadata;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${meta.name}.`, namespace: meta.namespace ?? 'default' },
    involvedObject: { apiVersion: object.apiVersion, kind: object.kind, name: meta.name, namespace: meta.namespace ?? 'default', uid: meta.uid, resourceVersion: meta.resourceVersion },
    reason: next.status === 'True' ? 'Accepted' : 'Rejected',
    message: next.status === 'True' ? 'served to every agent again' : `not served: ${next.message}`.slice(0, 1024),
    type: next.status === 'True' ? 'Normal' : 'Warning',
    source: { component: 'sluice-control' },
    reportingComponent: 'sluice-control',
    reportingInstance: instance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

/** Whether two statuses say the same (the transition time aside, which only follows the rest). */
function sameStatus(a: PolicyStatus | undefined, b: PolicyStatus): boolean {
  const ca = a?.conditions?.find((c) => c.type === 'Accepted');
  const cb = b.conditions[0];
  return a?.observedGeneration === b.observedGeneration && ca?.status === cb.status && ca.reason === cb.reason && ca.message === cb.message && ca.observedGeneration === cb.observedGeneration;
}

const POLICY_RESOURCES = WATCHED_RESOURCES.filter((r) => r.apiVersion.startsWith(`${SECURITY_GROUP}/`));

/**
 * Writes the Accepted condition of every policy object after each publish,
 * where it changed, and an Event when it flips. `patch(objectPath, status)`
 * sends the status subresource patch, `event(e)` creates the Event (after
 * the status write succeeded, so a retried write does not repeat it); a
 * failed write is logged (once per object until it succeeds) and tried
 * again after the next publish.
 */
export class PolicyStatusWriter {
  private readonly inFlight = new Set<string>();
  private readonly failing = new Set<string>();
  readonly counters = { written: 0, failed: 0, events: 0 };
  /** Only the leader of several replicas writes (leader-election.ts); alone, a replica always does. */
  private leading = true;
  /** The last publish seen, written out when this replica becomes the leader. */
  private last?: { objects: SourcedObject[]; errors: TranslationError[] };

  constructor(
    private readonly patch: (objectPath: string, status: PolicyStatus) => Promise<void>,
    private readonly logger: Logger,
    private readonly event: ((e: PolicyEvent) => Promise<void>) | undefined = undefined,
    private readonly instance = 'sluice-control',
    private readonly now: () => string = () => new Date().toISOString(),
  ) {}

  /**
   * Whether this replica writes. On becoming the leader it writes what the
   * last publish says wherever the objects differ (a former leader may
   * have left some unwritten).
   */
  setLeading(leading: boolean): void {
    this.leading = leading;
    if (leading && this.last) this.update(this.last.objects, this.last.errors);
  }

  /** Called with the objects of a publish and its translation errors. */
  update(objects: SourcedObject[], errors: TranslationError[]): void {
    this.last = { objects, errors };
    if (!this.leading) return;
    for (const { object } of objects) {
      const resource = POLICY_RESOURCES.find((r) => r.kind === object.kind);
      const namespace = object.metadata?.namespace;
      const name = object.metadata?.name;
      if (!resource || typeof namespace !== 'string' || typeof name !== 'string') continue;
      const desired = desiredPolicyStatus(object, errors, this.now());
      if (sameStatus(object.status as PolicyStatus | undefined, desired)) continue;
      const base = resource.path.slice(0, resource.path.length - resource.plural.length);
      const objectPath = `${base}namespaces/${encodeURIComponent(namespace)}/${resource.plural}/${encodeURIComponent(name)}`;
      if (this.inFlight.has(objectPath)) continue;
      this.inFlight.add(objectPath);
      const previous = (object.status as PolicyStatus | undefined)?.conditions?.find((c) => c.type === 'Accepted');
      const event = policyEvent(object, previous, desired.conditions[0], this.now(), this.instance);
      this.patch(objectPath, desired).then(
        () => {
          this.counters.written++;
          this.failing.delete(objectPath);
          this.logger.info({ object: objectName(object), accepted: desired.conditions[0].status }, 'policy status written');
          if (event && this.event) {
            this.event(event).then(
              () => this.counters.events++,
              (err: Error) => this.logger.warn({ object: objectName(object), err: err.message }, 'policy event not written'),
            );
          }
        },
        (err: Error) => {
          this.counters.failed++;
          if (!this.failing.has(objectPath)) this.logger.warn({ object: objectName(object), err: err.message }, 'policy status not written; tried again after the next change');
          this.failing.add(objectPath);
        },
      ).finally(() => this.inFlight.delete(objectPath));
    }
  }
}
