// The status sluice-control writes on its policy objects (AuthorizationPolicy,
// PeerAuthentication): an Accepted condition, True when the policy is served,
// False with the reason when translation rejected it, so that `kubectl get
// authorizationpolicies` (printer column Accepted) and `kubectl describe`
// tell the operator what became of the policy. Written only when it differs
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

/** Whether two statuses say the same (the transition time aside, which only follows the rest). */
function sameStatus(a: PolicyStatus | undefined, b: PolicyStatus): boolean {
  const ca = a?.conditions?.find((c) => c.type === 'Accepted');
  const cb = b.conditions[0];
  return a?.observedGeneration === b.observedGeneration && ca?.status === cb.status && ca.reason === cb.reason && ca.message === cb.message && ca.observedGeneration === cb.observedGeneration;
}

const POLICY_RESOURCES = WATCHED_RESOURCES.filter((r) => r.apiVersion.startsWith(`${SECURITY_GROUP}/`));

/**
 * Writes the Accepted condition of every policy object after each publish,
 * where it changed. `patch(objectPath, status)` sends the status subresource
 * patch; a failed write is logged (once per object until it succeeds) and
 * tried again after the next publish.
 */
export class PolicyStatusWriter {
  private readonly inFlight = new Set<string>();
  private readonly failing = new Set<string>();
  readonly counters = { written: 0, failed: 0 };

  constructor(
    private readonly patch: (objectPath: string, status: PolicyStatus) => Promise<void>,
    private readonly logger: Logger,
    private readonly now: () => string = () => new Date().toISOString(),
  ) {}

  /** Called with the objects of a publish and its translation errors. */
  update(objects: SourcedObject[], errors: TranslationError[]): void {
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
      this.patch(objectPath, desired).then(
        () => {
          this.counters.written++;
          this.failing.delete(objectPath);
          this.logger.info({ object: objectName(object), accepted: desired.conditions[0].status }, 'policy status written');
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
