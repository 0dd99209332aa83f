// The CustomResourceDefinitions of security.sluice.dev/v1alpha1
// AuthorizationPolicy and PeerAuthentication, as objects: deploy/base/crds/ holds
// them as YAML (written by scripts/generate-crds.js; a unit test fails when
// they differ). Their OpenAPI v3 schemas refuse what translate-policy.ts
// refuses, so a bad policy is rejected when it is applied:
//   - types, enums (action, mtls.mode), ports 1-65535 as numbers or strings;
//   - principals "<td>/ns/<ns>/sa/<sa>", "*", "prefix*", "*suffix" whose fixed
//     part fits that shape; namespaces as names or one-sided wildcards;
//     ipBlocks as IPv4/IPv6 addresses or CIDRs;
//   - from/to present but empty, a source or operation with nothing set;
//   - unknown fields (Istio's L7 fields among them): structural schemas
//     cannot say "additionalProperties: false" next to "properties"; the API
//     server refuses them under server-side field validation Strict
//     (kubectl's default) and prunes them otherwise;
//   - label keys of the selector: a CEL rule (x-kubernetes-validations).
// Both have a status subresource (conditions, observedGeneration) that
// sluice-control writes, and printer columns.
import { SECURITY_GROUP } from './kubernetes-resources';

const PRINCIPAL_EXACT = '[a-z0-9._-]+/ns/[a-z0-9-]+/sa/[a-z0-9.-]+';
const PRINCIPAL_PREFIX = '([a-z0-9._-]*|[a-z0-9._-]+/(n|ns)?|[a-z0-9._-]+/ns/[a-z0-9-]*|[a-z0-9._-]+/ns/[a-z0-9-]+/(s|sa)?|[a-z0-9._-]+/ns/[a-z0-9-]+/sa/[a-z0-9.-]*)\\*';
const PRINCIPAL_SUFFIX = '\\*([a-z0-9.-]*|(a|sa)?/[a-z0-9.-]+|[a-z0-9-]*/sa/[a-z0-9.-]+|(s|ns)?/[a-z0-9-]+/sa/[a-z0-9.-]+|[a-z0-9._-]*/ns/[a-z0-9-]+/sa/[a-z0-9.-]+)';
/** A principal pattern, as translate-policy.ts's isPrincipalPattern. */
export const PRINCIPAL_PATTERN = `^(\\*|${PRINCIPAL_EXACT}|${PRINCIPAL_PREFIX}|${PRINCIPAL_SUFFIX})$`;
/** A namespace name, "*", "prefix*" or "*suffix", as translate-policy.ts's checkNamespace. */
export const NAMESPACE_PATTERN = '^(\\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?|[-a-z0-9]{1,63}\\*|\\*[-a-z0-9]{1,63})$';
/** 1-65535 as a string. */
const PORT_STRING = '^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$';
/** IsQualifiedName (label keys). */
const QUALIFIED_NAME = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';

const strings = (item: object) => ({ type: 'array', items: item });
const principal = { type: 'string', pattern: PRINCIPAL_PATTERN };
const namespace = { type: 'string', pattern: NAMESPACE_PATTERN };
const ipBlock = { type: 'string', 'x-kubernetes-validations': [{ rule: 'isCIDR(self) || isIP(self)', message: 'must be an IPv4/IPv6 address or CIDR' }] };
const port = {
  'x-kubernetes-int-or-string': true,
  anyOf: [
    { type: 'integer', minimum: 1, maximum: 65535 },
    { type: 'string', pattern: PORT_STRING },
  ],
};

const selector = {
  type: 'object',
  description: 'The workloads it applies to; none: every workload of the namespace (in sluice-system, of the mesh).',
  properties: {
    matchLabels: {
      type: 'object',
      additionalProperties: { type: 'string', maxLength: 63, pattern: '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$' },
      'x-kubernetes-validations': [{ rule: `self.all(k, k.matches('${QUALIFIED_NAME}'))`, message: 'label keys must be qualified names' }],
    },
  },
};

const status = {
  type: 'object',
  description: 'Written by sluice-control: whether the policy is served, and why not.',
  properties: {
    observedGeneration: { type: 'integer' },
    conditions: {
      type: 'array',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      items: {
        type: 'object',
        required: ['type', 'status'],
        properties: {
          type: { type: 'string' },
          status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
          reason: { type: 'string' },
          message: { type: 'string' },
          lastTransitionTime: { type: 'string', format: 'date-time' },
          observedGeneration: { type: 'integer' },
        },
      },
    },
  },
};

export const authorizationPolicySpecSchema = {
  type: 'object',
  properties: {
    selector,
    action: { type: 'string', enum: ['ALLOW', 'DENY'], description: 'ALLOW (default) or DENY' },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          from: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['source'],
              properties: {
                source: {
                  type: 'object',
                  minProperties: 1,
                  properties: {
                    principals: strings(principal),
                    notPrincipals: strings(principal),
                    namespaces: strings(namespace),
                    notNamespaces: strings(namespace),
                    ipBlocks: strings(ipBlock),
                    notIpBlocks: strings(ipBlock),
                  },
                },
              },
            },
          },
          to: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['operation'],
              properties: { operation: { type: 'object', minProperties: 1, properties: { ports: strings(port), notPorts: strings(port) } } },
            },
          },
        },
      },
    },
  },
};

export const peerAuthenticationSpecSchema = {
  type: 'object',
  required: ['mtls'],
  properties: {
    selector,
    mtls: { type: 'object', required: ['mode'], properties: { mode: { type: 'string', enum: ['STRICT', 'PERMISSIVE', 'DISABLE'] } } },
  },
};

function crd(kind: string, plural: string, shortName: string, spec: object, specRequired: boolean, columns: object[]): object {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${SECURITY_GROUP}` },
    spec: {
      group: SECURITY_GROUP,
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames: [shortName], categories: ['sluice'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...columns,
            { name: 'Accepted', type: 'string', jsonPath: '.status.conditions[?(@.type=="Accepted")].status', description: 'whether sluice-control serves it' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              ...(specRequired ? { required: ['spec'] } : {}),
              properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec, status },
            },
          },
        },
      ],
    },
  };
}

/** The two CRDs, by the file name they have under deploy/base/crds/. */
export const POLICY_CRDS: Readonly<Record<string, object>> = Object.freeze({
  'security.sluice.dev_authorizationpolicies.yaml': crd('AuthorizationPolicy', 'authorizationpolicies', 'sap', authorizationPolicySpecSchema, false, [
    { name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'ALLOW (default) or DENY' },
  ]),
  'security.sluice.dev_peerauthentications.yaml': crd('PeerAuthentication', 'peerauthentications', 'spa', peerAuthenticationSpecSchema, true, [
    { name: 'Mode', type: 'string', jsonPath: '.spec.mtls.mode', description: 'STRICT, PERMISSIVE or DISABLE' },
  ]),
});

/** The YAML text of a CRD file: a header, then the object. */
export function crdFileText(object: object, stringify: (o: object) => string): string {
  return `# Generated from src/control/policy-crds.ts by scripts/generate-crds.js; do not edit.\n${stringify(object)}`;
}
