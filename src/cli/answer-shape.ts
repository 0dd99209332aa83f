// What sluicectl expects an admin answer to look like, checked before any
// table is drawn: an answer of another shape (another program on the socket,
// another version) gives a message naming the field, never a TypeError.

/** A leaf type, or a container of shapes. "unknown" accepts anything, null included. */
export type Shape =
  | 'string'
  | 'number'
  | 'boolean'
  | 'unknown'
  | { readonly list: Shape }
  | { readonly record: Shape }
  | { readonly fields: Readonly<Record<string, Shape>> }
  | { readonly anyOf: readonly Shape[] };

/** A list whose every item has `item`'s shape. */
export const list = (item: Shape): Shape => ({ list: item });
/** An object whose every value has `value`'s shape (counters by name). */
export const record = (value: Shape): Shape => ({ record: value });
/** An object with these fields; a name ending in "?" may be missing or null. Other fields are ignored. */
export const fields = (f: Record<string, Shape>): Shape => ({ fields: f });
/** Any one of these shapes. */
export const anyOf = (...shapes: Shape[]): Shape => ({ anyOf: shapes });

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  const text = JSON.stringify(v);
  return `${typeof v} ${text.length > 40 ? `${text.slice(0, 40)}...` : text}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The first place where `value` differs from `shape`, as "status.bpf.attached:
 * expected a list, got nothing"; undefined when it fits. `at` names the root.
 */
export function shapeProblem(value: unknown, shape: Shape, at = 'answer'): string | undefined {
  if (shape === 'unknown') return undefined;
  if (typeof shape === 'string') return typeof value === shape ? undefined : `${at}: expected a ${shape}, got ${describe(value)}`;
  if ('anyOf' in shape) {
    const problems = shape.anyOf.map((s) => shapeProblem(value, s, at));
    return problems.some((p) => p === undefined) ? undefined : problems[0];
  }
  if ('list' in shape) {
    if (!Array.isArray(value)) return `${at}: expected a list, got ${describe(value)}`;
    for (let i = 0; i < value.length; i++) {
      const p = shapeProblem(value[i], shape.list, `${at}[${i}]`);
      if (p) return p;
    }
    return undefined;
  }
  if (!isObject(value)) return `${at}: expected an object, got ${describe(value)}`;
  if ('record' in shape) {
    for (const [k, v] of Object.entries(value)) {
      const p = shapeProblem(v, shape.record, `${at}.${k}`);
      if (p) return p;
    }
    return undefined;
  }
  for (const [key, s] of Object.entries(shape.fields)) {
    const optional = key.endsWith('?');
    const name = optional ? key.slice(0, -1) : key;
    const v = value[name];
    if (v === undefined || (optional && v === null)) {
      if (optional) continue;
      return `${at}.${name}: missing`;
    }
    const p = shapeProblem(v, s, `${at}.${name}`);
    if (p) return p;
  }
  return undefined;
}
