// Objects to the resources sluice-control serves, in one call: what the
// `render` command prints and what the control plane publishes. One bad
// object (or one unreadable file) is reported alone; the rest renders.
import { defaultClusterRanges, type ClusterRanges } from '../model/cluster-ranges';
import type { AuthorizationPolicy, PeerAuthentication } from '../model/policy';
import { DEFAULT_TRUST_DOMAIN, type Service, type Workload } from '../model/resources';
import type { SourcedObject } from './kubernetes-objects';
import { ManifestError, manifestFiles, readManifestFile } from './manifests';
import { translate, type EndpointSource, type TranslationError } from './translate';
import { translatePolicies } from './translate-policy';

/**
 * What objects are translated with: the trust domain of workload identities
 * and the cluster's address ranges (sluice-control's flags).
 */
export interface RenderOptions {
  trustDomain: string;
  ranges: ClusterRanges;
  /** Where Service endpoints come from (translate's EndpointSource); default: pod selectors, as manifest files have no EndpointSlices. */
  endpointSource?: EndpointSource;
}

/** The resources the objects translate to, with what was refused or not served. */
export interface Rendering {
  workloads: Workload[];
  services: Service[];
  authorizationPolicies: AuthorizationPolicy[];
  peerAuthentications: PeerAuthentication[];
  /** One per refused object field, naming file, object and field (formatTranslationError). */
  errors: TranslationError[];
  /** What valid objects ask for and sluice does not serve (a UDP port, an IPv6 cluster IP, a headless Service, ...). */
  warnings: TranslationError[];
}

export const defaultRenderOptions: RenderOptions = Object.freeze({ trustDomain: DEFAULT_TRUST_DOMAIN, ranges: defaultClusterRanges() });

/**
 * Validates and translates `objects` (translate + translatePolicies). Does
 * not throw on anything the objects hold: every refused object is in
 * `errors`, every other one is rendered, and what it asks for that sluice
 * does not serve is in `warnings`.
 */
export function renderObjects(objects: SourcedObject[], version: string, options: RenderOptions = defaultRenderOptions): Rendering {
  const t = translate(objects, version, options.trustDomain, options.ranges, options.endpointSource);
  const p = translatePolicies(objects);
  return {
    workloads: t.snapshot.workloads,
    services: t.snapshot.services,
    authorizationPolicies: p.authorizationPolicies,
    peerAuthentications: p.peerAuthentications,
    errors: [...t.errors, ...p.errors],
    warnings: t.warnings,
  };
}

/**
 * Reads every manifest file under `root` and renders their objects. A file
 * that cannot be read or parsed is listed in `fileErrors` and left out; the
 * other files still render. Throws ManifestError only when `root` itself
 * does not exist.
 */
export function renderManifests(root: string, options: RenderOptions = defaultRenderOptions): { rendering: Rendering; fileErrors: string[] } {
  const objects: SourcedObject[] = [];
  const fileErrors: string[] = [];
  for (const file of manifestFiles(root)) {
    try {
      objects.push(...readManifestFile(file));
    } catch (err) {
      fileErrors.push(err instanceof ManifestError ? err.message : `${file}: ${(err as Error).message}`);
    }
  }
  return { rendering: renderObjects(objects, 'render', options), fileErrors };
}
