// The Kubernetes name and label rules, as k8s.io/apimachinery
// pkg/util/validation/validation.go states them. Each check returns
// undefined when the value is valid, else the reason in Kubernetes' words, so
// that an error reads the same as `kubectl apply` would have said it.
//
// Names reach SPIFFE identities, map keys and file names: a value these
// checks refuse ("../x", "a/b", "") must never get that far.

const DNS1123_LABEL_MAX = 63;
const DNS1123_SUBDOMAIN_MAX = 253;
const DNS1035_LABEL_MAX = 63;
const LABEL_VALUE_MAX = 63;
const QUALIFIED_NAME_MAX = 63;
const PORT_NAME_MAX = 15;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const PORT_NAME_CHARS = /^[-a-z0-9]+$/;
const HAS_LETTER = /[a-z]/;

/**
 * IsDNS1123Label: at most 63 characters, lowercase letters, digits and "-",
 * starting and ending with a letter or digit. Namespace names, container
 * names and service port names follow it.
 */
export function dns1123LabelProblem(value: string): string | undefined {
  if (value.length > DNS1123_LABEL_MAX) return `must be no more than ${DNS1123_LABEL_MAX} characters`;
  if (!DNS1123_LABEL.test(value)) {
    return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/**
 * IsDNS1123Subdomain: at most 253 characters, DNS-1123 labels joined by ".".
 * Pod names, node names and service account names follow it.
 */
export function dns1123SubdomainProblem(value: string): string | undefined {
  if (value.length > DNS1123_SUBDOMAIN_MAX) return `must be no more than ${DNS1123_SUBDOMAIN_MAX} characters`;
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/**
 * IsDNS1035Label: a DNS-1123 label that starts with a letter. Service names
 * follow it (ValidateServiceName = NameIsDNS1035Label in
 * pkg/apis/core/validation), so that a name is always a valid DNS name.
 */
export function dns1035LabelProblem(value: string): string | undefined {
  if (value.length > DNS1035_LABEL_MAX) return `must be no more than ${DNS1035_LABEL_MAX} characters`;
  if (!DNS1035_LABEL.test(value)) {
    return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
  }
  return undefined;
}

/**
 * IsQualifiedName: a label or selector key, "[prefix/]name" where the prefix
 * is a DNS-1123 subdomain and the name at most 63 characters of
 * alphanumerics, "-", "_" and ".", starting and ending with an alphanumeric.
 */
export function qualifiedNameProblem(value: string): string | undefined {
  const parts = value.split('/');
  let name = value;
  if (parts.length === 2) {
    if (parts[0] === '') return 'prefix part must be non-empty';
    const prefix = dns1123SubdomainProblem(parts[0]);
    if (prefix) return `prefix part ${prefix}`;
    name = parts[1];
  } else if (parts.length > 2) {
    return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'";
  }
  if (name === '') return 'name part must be non-empty';
  if (name.length > QUALIFIED_NAME_MAX) return `name part must be no more than ${QUALIFIED_NAME_MAX} characters`;
  if (!QUALIFIED_NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/** IsValidLabelValue: empty, or at most 63 characters shaped like a qualified name's name part. */
export function labelValueProblem(value: string): string | undefined {
  if (value.length > LABEL_VALUE_MAX) return `must be no more than ${LABEL_VALUE_MAX} characters`;
  if (!LABEL_VALUE.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return undefined;
}

/**
 * IsValidPortName (an IANA_SVC_NAME): at most 15 characters, lowercase
 * letters, digits and "-", at least one letter, no "-" at either end and no
 * "--". Container port names and named targetPorts follow it.
 */
export function portNameProblem(value: string): string | undefined {
  if (value.length < 1 || value.length > PORT_NAME_MAX) return `must be no more than ${PORT_NAME_MAX} characters`;
  if (!PORT_NAME_CHARS.test(value)) return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
  if (value.includes('--')) return 'must not contain consecutive hyphens';
  if (!HAS_LETTER.test(value)) return 'must contain at least one letter (a-z)';
  if (value.startsWith('-') || value.endsWith('-')) return 'must not begin or end with a hyphen';
  return undefined;
}

const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** IsEnvVarName: letters, digits, "_", "-" and ".", not starting with a digit. */
export function envVarNameProblem(value: string): string | undefined {
  if (!ENV_VAR_NAME.test(value)) return "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
  return undefined;
}

/** Whether value is a string that is a DNS-1123 label (k8s.io/apimachinery IsDNS1123Label). */
export function isDns1123Label(value: unknown): value is string {
  return typeof value === 'string' && dns1123LabelProblem(value) === undefined;
}

/** Whether value is a string that is a DNS-1123 subdomain (k8s.io/apimachinery IsDNS1123Subdomain). */
export function isDns1123Subdomain(value: unknown): value is string {
  return typeof value === 'string' && dns1123SubdomainProblem(value) === undefined;
}
