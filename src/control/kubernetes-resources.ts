// The Kubernetes API resources sluice-control reads: one row per watched
// collection, with the path the API serves it at (all namespaces) and the
// kind and apiVersion its objects have. Shared by the Kubernetes source and
// the simulated cluster's API stand-in, so both speak of the same paths.

/** One API collection sluice-control lists and watches. */
export interface WatchedResource {
  /** Resource name as in RBAC and "kubectl get": "pods", "endpointslices". */
  plural: string;
  kind: string;
  /** "v1" for the core group, "group/version" otherwise. */
  apiVersion: string;
  namespaced: boolean;
  /** Cluster-wide collection path: /api/v1/pods, /apis/discovery.k8s.io/v1/endpointslices. */
  path: string;
}

function resource(plural: string, kind: string, apiVersion: string, namespaced = true): WatchedResource {
  const prefix = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return { plural, kind, apiVersion, namespaced, path: `${prefix}/${plural}` };
}

export const SECURITY_GROUP = 'security.sluice.dev';

/** In the order the objects are handed to translation (namespaces before what lives in them). */
export const WATCHED_RESOURCES: readonly WatchedResource[] = Object.freeze([
  resource('namespaces', 'Namespace', 'v1', false),
  resource('pods', 'Pod', 'v1'),
  resource('services', 'Service', 'v1'),
  resource('endpointslices', 'EndpointSlice', 'discovery.k8s.io/v1'),
  resource('authorizationpolicies', 'AuthorizationPolicy', `${SECURITY_GROUP}/v1alpha1`),
  resource('peerauthentications', 'PeerAuthentication', `${SECURITY_GROUP}/v1alpha1`),
]);
