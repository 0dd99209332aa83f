// Leader election over a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection package does it (and istiod for its status writers): the
// leader renews the Lease every retry period; a candidate takes it over
// once its holder has not renewed it for leaseDurationSeconds; every write
// is a replace conditional on the Lease's resourceVersion, so of two
// candidates only one wins. Every replica of sluice-control serves xDS and
// issues certificates; only the leader writes policy status and Events.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { ObjectRef } from './ca-secret';
import { apiStatusCode } from './kubernetes-api-errors';

/** The Lease ("namespace/name") contended for, and the timings of the election. */
export interface LeaderElectionOptions {
  lease: ObjectRef;
  /** This replica's identity in the Lease (holderIdentity): the pod name. */
  identity: string;
  /** How long a Lease not renewed stays its holder's, s (client-go's default: 15). */
  leaseDurationSeconds: number;
  /** How often the leader renews and a candidate tries, ms (client-go's default: 2000). */
  retryPeriodMs: number;
  /** Called with true when this replica becomes the leader, false when it stops being it. */
  onLeading: (leading: boolean) => void;
  log: (message: string) => void;
  /** The clock, for tests. */
  now?: () => Date;
}

const code = apiStatusCode;

/** metav1.MicroTime (written with microseconds). */
const microTime = (d: Date) => new V1MicroTime(d.getTime());

/**
 * Runs the election until stop(). Errors talking to the API server are
 * retried each period; a leader that cannot renew within two thirds of its
 * lease (client-go's RenewDeadline) stops leading (onLeading(false)) before
 * another replica can take over.
 */
export class LeaderElector {
  private timer?: NodeJS.Timeout;
  private leading = false;
  /** When this replica last renewed successfully (ms). */
  private renewedAt = 0;
  private stopped = false;
  /** The attempt under way (acquire or renew), so that stop() lets it land before releasing. */
  private attempt?: Promise<void>;
  /** Set once this replica wrote itself into the Lease as holder. */
  private wroteLease = false;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly opts: LeaderElectionOptions,
  ) {}

  /** Whether this replica leads now. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts trying to acquire, then renew, the Lease every retryPeriodMs; returns at once. */
  start(): void {
    const api = this.kubeConfig.makeApiClient(CoordinationV1Api);
    // client-go's RenewDeadline: a leader that has not renewed for this long
    // stops leading, before the lease runs out and another may take over.
    const renewDeadlineMs = (this.opts.leaseDurationSeconds * 1000 * 2) / 3;
    const tick = async () => {
      if (this.stopped) return;
      let timer: NodeJS.Timeout | undefined;
      try {
        // An API server that does not answer must not keep a leader leading.
        await Promise.race([
          this.tryAcquireOrRenew(api),
          new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${Math.round(renewDeadlineMs)} ms`)), renewDeadlineMs))),
        ]);
      } catch (err) {
        this.opts.log(`lease ${this.opts.lease.namespace}/${this.opts.lease.name}: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
      if (this.leading && this.now().getTime() - this.renewedAt >= renewDeadlineMs) this.setLeading(false);
      if (!this.stopped) this.timer = setTimeout(() => void (this.attempt = tick()), this.opts.retryPeriodMs);
    };
    this.attempt = tick();
  }

  /** Stops the election; a leader releases the Lease (holderIdentity cleared) so another takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    // Leader-only writers stop at once; nothing makes this replica lead again.
    const wasLeading = this.leading;
    this.setLeading(false);
    // An attempt under way ends first (within the renew deadline): a renewal
    // landing after the release would take the Lease back.
    await this.attempt;
    if (!wasLeading && !this.wroteLease) return;
    const api = this.kubeConfig.makeApiClient(CoordinationV1Api);
    try {
      const lease = await api.readNamespacedLease(this.opts.lease);
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      await api.replaceNamespacedLease({ ...this.opts.lease, body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 } } });
    } catch {
      // Another replica takes over when the lease runs out.
    }
  }

  private now(): Date {
    return this.opts.now ? this.opts.now() : new Date();
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    if (leading && this.stopped) return; // won while stopping: stop() releases it
    this.leading = leading;
    this.opts.log(leading ? `became the leader (lease ${this.opts.lease.namespace}/${this.opts.lease.name})` : 'stopped leading');
    this.opts.onLeading(leading);
  }

  private async tryAcquireOrRenew(api: CoordinationV1Api): Promise<void> {
    const { lease: ref, identity } = this.opts;
    const now = this.now();
    let current: V1Lease | undefined;
    try {
      current = await api.readNamespacedLease(ref);
    } catch (err) {
      if (code(err) !== 404) throw err;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: this.opts.leaseDurationSeconds,
      renewTime: microTime(now),
    };
    if (!current) {
      try {
        await api.createNamespacedLease({
          namespace: ref.namespace,
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: ref.name, namespace: ref.namespace }, spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 } },
        });
      } catch (err) {
        if (code(err) === 409) return; // another replica created it first
        throw err;
      }
      this.renewedAt = now.getTime();
      this.wroteLease = true;
      this.setLeading(true);
      return;
    }
    const holder = current.spec?.holderIdentity;
    const renewed = current.spec?.renewTime ? new Date(current.spec.renewTime).getTime() : 0;
    const duration = (current.spec?.leaseDurationSeconds ?? this.opts.leaseDurationSeconds) * 1000;
    const mine = holder === identity;
    if (!mine && holder && renewed + duration > now.getTime()) {
      this.setLeading(false);
      return;
    }
    const body: V1Lease = {
      ...current,
      spec: {
        ...current.spec,
        ...spec,
        ...(mine ? {} : { acquireTime: microTime(now), leaseTransitions: (current.spec?.leaseTransitions ?? 0) + 1 }),
      },
    };
    try {
      await api.replaceNamespacedLease({ ...ref, body });
    } catch (err) {
      if (code(err) === 409) {
        // Someone else wrote it since we read it: they won this round.
        if (!mine) this.setLeading(false);
        return;
      }
      throw err;
    }
    this.renewedAt = now.getTime();
    this.wroteLease = true;
    this.setLeading(true);
  }
}
