// JSON schemas for the fields sluice reads of each Kubernetes kind: their
// types and the ranges a schema can say. Fields sluice does not read are
// left alone (a manifest carries many). What a schema cannot say (name
// rules, clusterIP ranges, uniqueness) is in object-validation.ts.

/** ContainerPort.containerPort, ServicePort.port: 1-65535 (validation.IsValidPortNum). */
export const portNumber = { type: 'integer', minimum: 1, maximum: 65535 };
/** Protocol enum of core/v1 (SupportedPortProtocols in pkg/apis/core/validation). */
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
/** ServiceType enum of core/v1. */
export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
/** AddressType enum of discovery/v1 (FQDN is deprecated but still accepted). */
export const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'];
/** PodPhase enum of core/v1. */
export const POD_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

const string = { type: 'string' };
const strings = { type: 'array', items: string };
const stringMap = { type: 'object', additionalProperties: string };
const protocol = { type: 'string', enum: PROTOCOLS };

const metadata = {
  type: 'object',
  required: ['name'],
  properties: {
    name: string,
    namespace: string,
    uid: string,
    labels: stringMap,
    annotations: stringMap,
    resourceVersion: string,
    deletionTimestamp: string,
  },
};

const base = (spec: object | undefined, extra: Record<string, object> = {}) => ({
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', ...(spec ? ['spec'] : [])],
  properties: { apiVersion: string, kind: string, metadata, ...(spec ? { spec } : {}), ...extra },
});

export const namespaceSchema = base(undefined);

const containerPort = {
  type: 'object',
  required: ['containerPort'],
  properties: { name: string, containerPort: portNumber, protocol },
};

const container = {
  type: 'object',
  properties: {
    name: string,
    command: strings,
    args: strings,
    workingDir: string,
    env: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: string, value: string } } },
    ports: { type: 'array', items: containerPort },
  },
};

export const podSchema = base(
  {
    type: 'object',
    properties: {
      nodeName: string,
      serviceAccountName: string,
      // Deprecated alias Kubernetes still reads when serviceAccountName is empty.
      serviceAccount: string,
      hostNetwork: { type: 'boolean' },
      containers: { type: 'array', items: container },
    },
  },
  {
    status: {
      type: 'object',
      properties: {
        podIP: string,
        hostIP: string,
        phase: { type: 'string', enum: POD_PHASES },
        conditions: { type: 'array', items: { type: 'object', required: ['type', 'status'], properties: { type: string, status: string } } },
      },
    },
  },
);

const servicePort = {
  type: 'object',
  required: ['port'],
  properties: {
    name: string,
    port: portNumber,
    // IntOrString: a number 1-65535 or a port name; both checked in object-validation.ts.
    targetPort: { type: ['integer', 'string'] },
    protocol,
  },
};

export const serviceSchema = base({
  type: 'object',
  properties: {
    type: { type: 'string', enum: SERVICE_TYPES },
    clusterIP: string,
    // Dual-stack: at most one address per family (ValidateService).
    clusterIPs: { type: 'array', maxItems: 2, items: string },
    selector: stringMap,
    ports: { type: 'array', items: servicePort },
  },
});

const nullableBoolean = { type: ['boolean', 'null'] };

/** discovery.k8s.io/v1 EndpointSlice: addresses, conditions, node and pod of each endpoint, and the slice's ports. */
export const endpointSliceSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'addressType'],
  properties: {
    apiVersion: string,
    kind: string,
    metadata,
    addressType: { type: 'string', enum: ADDRESS_TYPES },
    endpoints: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        required: ['addresses'],
        properties: {
          // ValidateEndpointSlice: at least one address, at most 100; consumers use the first.
          addresses: { type: 'array', minItems: 1, maxItems: 100, items: string },
          conditions: { type: 'object', properties: { ready: nullableBoolean, serving: nullableBoolean, terminating: nullableBoolean } },
          nodeName: string,
          targetRef: { type: 'object', properties: { kind: string, name: string, namespace: string, uid: string } },
        },
      },
    },
    ports: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        // A nil port means "all ports" (only meaningful for headless Services without ports).
        properties: { name: string, port: { type: ['integer', 'null'], minimum: 1, maximum: 65535 }, protocol },
      },
    },
  },
};

/** The security kinds' specs are checked field by field in translate-policy.ts; here only what every object has. */
export const policySchema = base(undefined);
