// The import direction between the parts of the repository (DESIGN.md
// section 4, STYLE.md 1 and 5), read with the TypeScript compiler so that
// every import form counts: `import ... from` with either quote, `export ...
// from`, `import x = require()`, `require()` and `import()`.
//
// A part is a folder of src/ (src/model), of test/ (test/unit) or bench/.
// Every edge between two parts must stand in `edges` with the reason it is
// allowed; an edge without a reason, or one not listed, fails the test.
// Widening the table is a design decision: write the why beside it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as ts from 'typescript';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const checkedRoots = ['src', 'bench', 'test'];

/** part -> part it may import -> why that edge exists. */
const edges: Record<string, Record<string, string>> = {
  // Pure: no kernel, network or filesystem; testable without root.
  'src/model': {},
  'src/datapath': {
    'src/model': 'desired map contents are computed from model resources',
  },
  'src/command-line': {},
  // Node built-ins only: every binary, sluice-cni included, may use it.
  'src/files': {},
  // The CNI plugin runs for every pod: node built-ins only, nothing of the agent.
  'src/cni': {
    'src/files': 'pod records, the mesh record and the conflist are replaced atomically',
  },
  'src/config': {
    'src/command-line': 'flag declarations are shared with the binaries that parse them',
    'src/model': 'addresses and names are validated with the model validators',
  },
  'src/xds': {
    'src/model': 'resource codecs decode into model types (the transport has no other semantics)',
  },
  'src/identity': {
    'src/model': 'issuance checks a requested identity against the model workloads of a node',
    'src/files': 'keys and certificates are written atomically and durably',
  },
  'src/native': {},
  'src/kernel': {
    'src/native': 'kernel/ is the only user of the addon: loading, maps, sockets, relay',
    'src/datapath': 'the reconciler writes the desired state through the codecs into kernel maps',
  },
  'src/proxy': {
    'src/model': 'the proxy decides from model snapshots; it never touches native or kernel',
  },
  'src/observability': {
    'src/model': 'admin views carry model records (a proxied connection) as the proxy keeps them',
  },
  'src/agent': {
    'src/cni': 'the agent serves sluice-cni and shares its wire protocol and pod records',
    'src/command-line': 'sluice-agent command line',
    'src/config': 'agent configuration',
    'src/datapath': 'desired map contents and codec constants (strict flags)',
    'src/files': 'the last good state and the mesh record are written atomically and durably',
    'src/kernel': 'the agent owns the kernel side: programs, maps, pod netns, relay, socket options',
    'src/identity': 'the agent requests and renews workload certificates',
    'src/model': 'resources and snapshots',
    'src/observability': 'logging, metrics, admin and readiness',
    'src/proxy': 'the node proxy runs inside the agent',
    'src/xds': 'the agent subscribes to the control plane over Delta ADS',
  },
  'src/control': {
    'src/command-line': 'sluice-control command line',
    'src/config': 'control plane configuration',
    'src/identity': 'the control plane runs the certificate authority and issuance',
    'src/model': 'translation produces model resources',
    'src/observability': 'logging and the admin endpoint',
    'src/xds': 'the control plane serves Delta ADS',
  },
  'src/cli': {
    'src/command-line': 'sluicectl command line',
    'src/observability': 'admin answers are fetched with the shared JSON-over-HTTP helper',
  },
  'src/sim': {
    'src/command-line': 'sluice-sim command line',
    'src/control': 'the sim serves its objects to the control plane it starts',
    'src/identity': 'the sim issues node tokens and the control plane CA',
    'src/model': 'resources and cluster ranges',
    'src/files': 'sim state and pod records are written atomically',
    'src/kernel': 'the cgroup v2 mount point is found the way the agent finds it',
  },
  bench: {
    'src/kernel': 'the scale bench inspects pins under the schema directory',
    'src/model': 'the scale bench builds resources directly',
    'src/sim': 'benches run inside a simulated cluster',
    'src/xds': 'the scale bench pushes resources over Delta ADS',
  },
  'test/helpers': {},
  'test/fixtures': {},
  'test/unit': {
    'src/agent': 'unit tests of the agent parts that need no root',
    'src/cli': 'unit tests of sluicectl views',
    'src/cni': 'unit tests of sluice-cni',
    'src/command-line': 'unit tests of the shared command line',
    'src/config': 'unit tests of configuration',
    'src/control': 'unit tests of translation and validation',
    'src/datapath': 'unit tests of desired state, codecs and the reconciler',
    'src/files': 'unit tests of the atomic write',
    'src/identity': 'unit tests of identity',
    'src/kernel': 'the node proxy test hands pairs to the splice relay (no root needed)',
    'src/model': 'unit tests of the model',
    'src/native': 'the codec test reads the compiled object\'s BTF through the addon',
    'src/observability': 'promtool on the metric registries, access-log fields, dashboard queries against real metric names',
    'src/proxy': 'unit tests of the node proxy and policy',
    'src/sim': 'unit tests of sim host helpers',
    'src/xds': 'unit tests of the xDS transport',
    'test/helpers': 'the dashboard\'s queries, shared with the Prometheus e2e test; the kubeconfig of the Kubernetes API stand-in; waiting for a condition',
  },
  'test/integration': {
    'src/agent': 'the agent end to end on this host',
    'src/cni': 'sluice-cni against real CNI plugins',
    'src/control': 'the control plane over gRPC',
    'src/datapath': 'codec constants for map entries written by the test',
    'src/identity': 'certificates over gRPC',
    'src/kernel': 'the kernel side loaded and attached for real',
    'src/model': 'resources fed to the agent and control plane',
    'src/native': 'addon calls made directly by the kernel test',
    'src/proxy': 'tunnels between two proxies',
    'src/sim': 'cgroup and bpffs helpers',
    'src/xds': 'resource types',
    'test/helpers': 'fixture paths and shared helpers',
  },
  'test/e2e': {
    'src/kernel': 'checks pins under the schema directory',
    'src/sim': 'drives the simulated cluster',
    'test/helpers': 'the sim fixture',
  },
  'test/conformance': {
    'test/helpers': 'the sim fixture',
  },
};

/** Files allowed a require()/import() whose specifier is not a string literal, and why. */
const dynamicLoads: Record<string, string> = {
  'src/native/bpf-addon.ts': 'the compiled addon, loaded once by path',
  'test/e2e/capture.test.ts': 'a fixture module from the compiled test tree',
  'test/e2e/mtls.test.ts': 'a fixture module from the compiled test tree',
  'test/conformance/conformance.test.ts': 'a fixture module from the compiled test tree',
  'test/fixtures/handover-old-agent.js': 'the old agent of a handover runs the compiled handover module in its own process',
  'test/fixtures/keeper-agent.js': 'the agent a listener keeper asks for copies runs the compiled handover module in its own process',
  'test/fixtures/relay-start-failure.js': 'the relay is started in a process with a small descriptor limit, through the compiled addon',
};

/** Packages and built-ins that pure parts may import, and why. */
const pureParts: Record<string, Record<string, string>> = {
  'src/model': {
    ajv: 'schema validation of resources',
    'node:net': 'address parsing (isIP) only',
  },
  'src/datapath': {
    'node:net': 'address parsing (isIP) only',
  },
};

/** One module reference of a file: the specifier, or null for a computed one. */
interface ModuleReference {
  specifier: string | null;
  line: number;
}

/** Every module a source text references, in whatever import form. */
function moduleReferences(fileName: string, text: string): ModuleReference[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const out: ModuleReference[] = [];
  const add = (node: ts.Node, spec: ts.Expression | undefined) => {
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    out.push({ specifier: spec && ts.isStringLiteralLike(spec) ? spec.text : null, line });
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      add(node, node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node, node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal as ts.Expression);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The part a repository path belongs to: src/<folder>, test/<folder> or bench. */
function partOf(relative: string): string {
  const [top, second] = relative.split(path.sep);
  return top === 'bench' || second === undefined ? top : `${top}/${second.replace(/\.(ts|js)$/, '')}`;
}

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : /\.(ts|js)$/.test(e.name) ? [path.join(dir, e.name)] : []));
}

interface Reference {
  file: string;
  line: number;
  specifier: string | null;
  from: string;
  /** The part a relative specifier lands in; undefined for packages and built-ins. */
  to?: string;
}

function allReferences(): Reference[] {
  const refs: Reference[] = [];
  for (const file of checkedRoots.flatMap((r) => sourceFiles(path.join(repoRoot, r)))) {
    const rel = path.relative(repoRoot, file);
    for (const ref of moduleReferences(file, fs.readFileSync(file, 'utf8'))) {
      const r: Reference = { file: rel, line: ref.line, specifier: ref.specifier, from: partOf(rel) };
      if (ref.specifier?.startsWith('.')) r.to = partOf(path.relative(repoRoot, path.resolve(path.dirname(file), ref.specifier)));
      refs.push(r);
    }
  }
  return refs;
}

describe('architecture', () => {
  const refs = allReferences();

  it('finds every import form', () => {
    const text = [
      `import a from '../model/a';`,
      `import b from "../model/b";`,
      `import type { C } from '../model/c';`,
      `export { d } from "../model/d";`,
      `export * from '../model/e';`,
      `import f = require('../model/f');`,
      `const g = require("../model/g");`,
      `const h = import('../model/h');`,
      `type I = typeof import('../model/i');`,
      `import '../model/j';`,
      `const k = require(somePath);`,
    ].join('\n');
    assert.deepEqual(
      moduleReferences('sample.ts', text).map((r) => r.specifier),
      ['../model/a', '../model/b', '../model/c', '../model/d', '../model/e', '../model/f', '../model/g', '../model/h', '../model/i', '../model/j', null],
    );
  });

  it('every part of src/, test/ and bench/ is known', () => {
    const parts = new Set<string>();
    for (const root of checkedRoots) for (const f of sourceFiles(path.join(repoRoot, root))) parts.add(partOf(path.relative(repoRoot, f)));
    assert.deepEqual([...parts].sort(), Object.keys(edges).sort());
  });

  it('every allowed edge says why', () => {
    const unexplained = Object.entries(edges).flatMap(([from, tos]) =>
      Object.entries(tos)
        .filter(([, why]) => why.trim().length < 10)
        .map(([to]) => `${from} -> ${to}`),
    );
    assert.deepEqual(unexplained, []);
  });

  it('imports follow the allowed edges', () => {
    const violations = refs
      .filter((r) => r.to !== undefined && r.to !== r.from && edges[r.from]?.[r.to] === undefined)
      .map((r) => `${r.file}:${r.line} imports ${r.specifier} (${r.from} -> ${r.to}: add the edge with its why, or drop the import)`);
    assert.deepEqual(violations, []);
  });

  it('nothing in src/ reaches into test/ or bench/', () => {
    const reversed = refs.filter((r) => r.from.startsWith('src/') && r.to !== undefined && !r.to.startsWith('src/'));
    assert.deepEqual(reversed.map((r) => `${r.file}:${r.line} imports ${r.specifier}`), []);
  });

  it('pure parts import only the packages listed for them', () => {
    const violations = refs
      .filter((r) => pureParts[r.from] && r.specifier !== null && r.to === undefined && pureParts[r.from][r.specifier] === undefined)
      .map((r) => `${r.file}:${r.line} imports ${r.specifier} (${r.from} is pure)`);
    assert.deepEqual(violations, []);
  });

  it('computed require()/import() only where listed', () => {
    const found = [...new Set(refs.filter((r) => r.specifier === null).map((r) => r.file))].sort();
    assert.deepEqual(found, Object.keys(dynamicLoads).sort());
  });

  it("README's layout table lists exactly the folders of src/", () => {
    const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const layout = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));
    const listed = [...layout.matchAll(/^\| `src\/([\w-]+)\/`/gm)].map((m) => `src/${m[1]}`).sort();
    const folders = fs.readdirSync(path.join(repoRoot, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `src/${e.name}`).sort();
    assert.deepEqual(listed, folders);
  });

  it('only native/ loads the compiled addon', () => {
    // A .node file by name, or any computed require() in src/ (the addon is loaded by path).
    const loaders = refs.filter((r) => r.specifier?.endsWith('.node') || (r.specifier === null && r.from.startsWith('src/'))).map((r) => r.file);
    assert.deepEqual([...new Set(loaders)], ['src/native/bpf-addon.ts']);
  });
});
