// deploy/ is validated offline: every object against the Kubernetes OpenAPI
// schema of its kind (kubernetes-models), then against the API server's own
// validation rules that schemas do not encode (each test names the rule of
// kube-apiserver it mirrors), and the binaries' arguments are ones they accept.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { loadAgentConfig } from '../../src/config/agent-config';
import { loadControlConfig } from '../../src/config/control-config';

const deployRoot = path.resolve(__dirname, '..', '..', '..', 'deploy');
/** The kustomize base: every object sluice installs. */
const deployDir = path.join(deployRoot, 'base');

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

/** Every object of deploy/base/ and deploy/base/crds/ (kustomization.yaml is kustomize's, not an object). */
function docs(): Doc[] {
  return ['', 'crds']
    .flatMap((sub) => fs.readdirSync(path.join(deployDir, sub)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').map((f) => path.join(sub, f)))
    .flatMap((f) =>
      parseAllDocuments(fs.readFileSync(path.join(deployDir, f), 'utf8')).map((d) => {
        assert.equal(d.errors.length, 0, `${f}: ${d.errors[0]?.message}`);
        return d.toJS() as Doc;
      }),
    );
}

/** The schema-validated model of each kind deploy/ holds. */
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  ClusterRole, ClusterRoleBinding, CustomResourceDefinition, DaemonSet, Deployment, Namespace, PodDisruptionBudget, Role, RoleBinding, Service, ServiceAccount,
} as never;

interface Container {
  name: string;
  securityContext?: { privileged?: boolean };
  ports?: { containerPort: number; hostPort?: number }[];
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: string }[];
  readinessProbe?: { httpGet?: { port: number | string } };
}
interface AnyPodSpec {
  hostNetwork?: boolean;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; projected?: { sources?: { serviceAccountToken?: { expirationSeconds?: number } }[] } }[];
}

/** The pod templates of the workloads in deploy/. */
function podSpecs(): [string, AnyPodSpec][] {
  return docs()
    .filter((d) => d.kind === 'DaemonSet' || d.kind === 'Deployment')
    .map((d) => [`${d.kind} ${d.metadata.name}`, (d.spec as { template: { spec: AnyPodSpec } }).template.spec]);
}

describe('deploy manifests against the Kubernetes API rules', () => {
  it('every object validates against the OpenAPI schema of its kind', () => {
    for (const d of docs()) {
      const Model = MODELS[d.kind];
      assert.ok(Model, `${d.kind} ${d.metadata.name}: no schema known for this kind`);
      assert.doesNotThrow(() => new Model(d as never).validate(), `${d.kind} ${d.metadata.name}`);
    }
  });

  it('the schema check can fail: a mistyped field is caught', () => {
    const ds = docs().find((d) => d.kind === 'DaemonSet')!;
    const broken = structuredClone(ds) as unknown as { spec: { template: { spec: { containers: { args: unknown }[] } } } };
    broken.spec.template.spec.containers[0].args = '--node-name=x';
    assert.throws(() => new DaemonSet(broken as never).validate(), /args/);
  });

  it('Bidirectional mount propagation only in privileged containers (core validation: validateMountPropagation)', () => {
    for (const [what, pod] of podSpecs()) {
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        for (const m of c.volumeMounts ?? []) {
          if (m.mountPropagation === 'Bidirectional') assert.equal(c.securityContext?.privileged, true, `${what} ${c.name} ${m.mountPath}: Bidirectional needs a privileged container`);
        }
      }
    }
  });

  it('every volume mount names a volume of the pod, names are unique (core validation: validateVolumeMounts, validateVolumes)', () => {
    for (const [what, pod] of podSpecs()) {
      const volumes = (pod.volumes ?? []).map((v) => v.name);
      assert.equal(new Set(volumes).size, volumes.length, `${what}: duplicate volume names`);
      const containers = [...pod.containers, ...(pod.initContainers ?? [])];
      assert.equal(new Set(containers.map((c) => c.name)).size, containers.length, `${what}: duplicate container names`);
      for (const c of containers) for (const m of c.volumeMounts ?? []) assert.ok(volumes.includes(m.name), `${what} ${c.name}: volume ${m.name} not found`);
    }
  });

  it('with hostNetwork a hostPort equals its containerPort (core validation: validateHostNetwork)', () => {
    for (const [what, pod] of podSpecs()) {
      if (!pod.hostNetwork) continue;
      for (const c of pod.containers) for (const p of c.ports ?? []) assert.ok(p.hostPort === undefined || p.hostPort === p.containerPort, `${what} ${c.name}: hostPort ${p.hostPort} != containerPort ${p.containerPort}`);
    }
  });

  it('a projected service account token lives at least 10 minutes (core validation: validateProjectionSources)', () => {
    for (const [what, pod] of podSpecs()) {
      for (const v of pod.volumes ?? []) {
        for (const src of v.projected?.sources ?? []) {
          const s = src.serviceAccountToken?.expirationSeconds;
          if (s !== undefined) assert.ok(s >= 600 && s <= 2 ** 32, `${what} volume ${v.name}: expirationSeconds ${s}`);
        }
      }
    }
  });

  it('a DaemonSet rolling update: maxSurge and maxUnavailable not both 0 (apps validation: ValidateRollingUpdateDaemonSet)', () => {
    for (const d of docs().filter((x) => x.kind === 'DaemonSet')) {
      const r = (d.spec as { updateStrategy?: { rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } } }).updateStrategy?.rollingUpdate;
      if (!r) continue;
      assert.ok(!(String(r.maxSurge ?? 0) === '0' && String(r.maxUnavailable ?? 1) === '0'), `${d.metadata.name}: both 0`);
    }
  });
});

describe('deploy manifests', () => {
  it('the kustomization lists every object file', () => {
    const k = parse(fs.readFileSync(path.join(deployDir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    const files = ['', 'crds'].flatMap((sub) => fs.readdirSync(path.join(deployDir, sub)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').map((f) => path.posix.join(sub, f)));
    assert.deepEqual([...k.resources].sort(), files.sort());
  });

  it('sluice-control may read what it watches, and write only policy status, Events and TokenReviews', () => {
    const role = docs().find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'sluice-control') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    const reads = new Set(['list', 'watch']);
    const allowed = (group: string, resource: string, verb: string) => role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const [group, resource] of [['', 'namespaces'], ['', 'pods'], ['', 'services'], ['discovery.k8s.io', 'endpointslices'], ['security.sluice.dev', 'authorizationpolicies'], ['security.sluice.dev', 'peerauthentications']]) {
      for (const verb of reads) assert.ok(allowed(group, resource, verb), `${verb} ${group}/${resource}`);
    }
    const writes = role.rules.filter((r) => r.verbs.some((v) => !reads.has(v)));
    const written = writes.flatMap((r) => r.resources.map((res) => `${res}:${r.verbs.filter((v) => !reads.has(v)).join(',')}`)).sort();
    // Exactly the requests src/control sends: PATCH .../status (merge patch), POST core/v1 events, POST tokenreviews.
    assert.deepEqual(written, ['authorizationpolicies/status:patch', 'events:create', 'peerauthentications/status:patch', 'tokenreviews:create']);
    assert.ok(role.rules.every((r) => !r.verbs.includes('get')), 'informers list and watch; no rule grants get of single objects cluster-wide');
    assert.ok(role.rules.every((r) => !r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*')), 'no wildcards');
    assert.ok(!allowed('', 'secrets', 'get') && !allowed('', 'configmaps', 'get'), 'no secrets or configmaps cluster-wide');
  });

  it('in sluice-system only, sluice-control may keep the mesh root (Secret, ConfigMap) and its Lease, by name where RBAC allows', () => {
    const role = docs().find((d) => d.kind === 'Role' && d.metadata.name === 'sluice-control-ca') as unknown as { metadata: { namespace: string }; rules: { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }[] };
    assert.equal(role.metadata.namespace, 'sluice-system');
    const granted = role.rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${res}${r.resourceNames ? `/${r.resourceNames.join(',')}` : ''}`))).sort();
    // create cannot name its object in RBAC; every other verb is limited to the two names.
    assert.deepEqual(granted, [
      'create configmaps', 'create leases', 'create secrets',
      'get configmaps/sluice-ca-root', 'get leases/sluice-control', 'get secrets/sluice-ca',
      'update configmaps/sluice-ca-root', 'update leases/sluice-control',
    ]);
    const binding = docs().find((d) => d.kind === 'RoleBinding' && d.metadata.name === 'sluice-control-ca') as unknown as { roleRef: { kind: string; name: string }; subjects: { name: string; namespace: string }[] };
    assert.deepEqual({ role: binding.roleRef, subjects: binding.subjects.map((x) => `${x.namespace}/${x.name}`) }, { role: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sluice-control-ca' }, subjects: ['sluice-system/sluice-control'] });
    const dep = docs().find((d) => d.kind === 'Deployment' && d.metadata.name === 'sluice-control')!;
    const control = loadControlConfig((dep.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args, {});
    assert.deepEqual([control.caSecret, control.caRootConfigmap, control.leaderElectionLease], ['sluice-system/sluice-ca', 'sluice-system/sluice-ca-root', 'sluice-system/sluice-control']);
    const ds = docs().find((d) => d.kind === 'DaemonSet')!;
    const volumes = (ds.spec as { template: { spec: { volumes: { name: string; configMap?: { name: string } }[] } } }).template.spec.volumes;
    assert.ok(volumes.some((v) => v.configMap?.name === 'sluice-ca-root'), 'agents mount the ConfigMap the control plane publishes');
  });

  it('every document has apiVersion, kind and a DNS-1123 name', () => {
    for (const d of docs()) {
      assert.match(d.apiVersion, /^(v1|apps\/v1|rbac\.authorization\.k8s\.io\/v1|apiextensions\.k8s\.io\/v1|policy\/v1)$/, `${d.kind} apiVersion`);
      assert.ok(d.kind);
      assert.match(d.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
  });

  it('the DaemonSet passes arguments the agent accepts, and probes its readiness endpoint', () => {
    const ds = docs().find((d) => d.kind === 'DaemonSet')!;
    const pod = (ds.spec as { template: { spec: { containers: { args: string[]; readinessProbe: { httpGet: { path: string; port: number } }; volumeMounts: { mountPath: string }[] }[]; hostNetwork: boolean } } }).template.spec;
    const agent = pod.containers[0];
    const args = agent.args.map((a) => a.replace('$(NODE_NAME)', 'node-a').replace('$(HOST_IP)', '192.0.2.10'));
    const config = loadAgentConfig(args, {});
    assert.equal(config.proxyPort, 15001);
    assert.equal(agent.readinessProbe.httpGet.path, '/healthz/ready');
    assert.equal(agent.readinessProbe.httpGet.port, config.readinessPort);
    assert.equal(pod.hostNetwork, true, 'the node proxy lives in the node network namespace');
    const mounts = agent.volumeMounts.map((m) => m.mountPath);
    for (const p of ['/sys/fs/bpf', '/sys/fs/cgroup', '/var/run/netns']) assert.ok(mounts.includes(p), `mounts ${p}`);
    assert.ok(config.bpffs.startsWith('/sys/fs/bpf/'), 'pins live under the mounted bpffs');
    assert.ok(mounts.includes(config.stateDir), 'the persisted state survives the pod');
  });

  it('the control plane Deployment passes arguments sluice-control accepts, and agents point at its Service', () => {
    const all = docs();
    const dep = all.find((d) => d.kind === 'Deployment' && d.metadata.name === 'sluice-control')!;
    const container = (dep.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0];
    const config = loadControlConfig(container.args, {});
    const svc = all.find((d) => d.kind === 'Service' && d.metadata.name === 'sluice-control')!;
    const port = (svc.spec as { ports: { port: number }[] }).ports[0].port;
    assert.equal(Number(config.listen.split(':')[1]), port);
    const ds = all.find((d) => d.kind === 'DaemonSet')!;
    const agentArgs = (ds.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args;
    assert.ok(agentArgs.includes(`--control-plane=sluice-control.sluice-system.svc:${port}`));
  });

  it('secure by default: agents prove their node with a projected token checked by TokenReview, over TLS to the mesh root', () => {
    const all = docs();
    const dep = all.find((d) => d.kind === 'Deployment' && d.metadata.name === 'sluice-control')!;
    const control = loadControlConfig((dep.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args, {});
    assert.equal(control.nodeAuth, 'tokenreview');
    assert.equal(control.agentServiceAccount, 'sluice-system/sluice-agent');
    const ds = all.find((d) => d.kind === 'DaemonSet')!;
    const pod = (ds.spec as { template: { spec: PodSpec } }).template.spec;
    assert.equal(pod.serviceAccountName, 'sluice-agent');
    const agent = loadAgentConfig(pod.containers[0].args.map((a) => a.replace('$(NODE_NAME)', 'n').replace('$(HOST_IP)', '10.0.0.1')), {});
    const tokenMount = pod.containers[0].volumeMounts.find((m) => agent.nodeTokenFile.startsWith(`${m.mountPath}/`))!;
    const projected = pod.volumes.find((v) => v.name === tokenMount.name)?.projected?.sources?.[0]?.serviceAccountToken;
    assert.deepEqual(projected && { audience: projected.audience, path: agent.nodeTokenFile.slice(tokenMount.mountPath.length + 1) }, { audience: control.tokenAudience, path: projected?.path });
    assert.ok((projected?.expirationSeconds ?? Infinity) <= 3600, 'short-lived');
    assert.ok(agent.controlPlaneCa, 'the agent verifies the control plane with the mesh root');
    // The key of the mesh root never reaches the nodes: agents mount the ConfigMap with the root alone.
    const caMount = pod.containers[0].volumeMounts.find((m) => agent.controlPlaneCa.startsWith(`${m.mountPath}/`))!;
    assert.ok(pod.volumes.find((v) => v.name === caMount.name)?.configMap, 'the root from a ConfigMap, not the Secret');
    const rbac = parseAllDocuments(fs.readFileSync(path.join(deployDir, 'sluice-control-rbac.yaml'), 'utf8')).map((d) => d.toJSON() as { kind: string; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] });
    const rules = rbac.find((d) => d.kind === 'ClusterRole')!.rules!;
    assert.ok(rules.some((r) => r.apiGroups.includes('authentication.k8s.io') && r.resources.includes('tokenreviews') && r.verbs.includes('create')));
  });

  it('DaemonSet updates start the new agent beside the old one (maxSurge), with no host port to block it', () => {
    const ds = docs().find((d) => d.kind === 'DaemonSet')!;
    const spec = ds.spec as { updateStrategy: { rollingUpdate: { maxSurge: number; maxUnavailable: number } }; template: { spec: PodSpec } };
    assert.deepEqual(spec.updateStrategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
    // With hostNetwork every declared containerPort is a host port, and the surge pod would not fit.
    assert.ok(spec.template.spec.containers.every((c) => !c.ports), 'no ports declared');
    const agent = loadAgentConfig(spec.template.spec.containers[0].args.map((a) => a.replace('$(NODE_NAME)', 'n').replace('$(HOST_IP)', '10.0.0.1')), {});
    assert.ok(agent.drainSeconds < ((spec.template.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30), 'drained before the kubelet kills it');
  });
});

interface PodSpec {
  serviceAccountName?: string;
  containers: { args: string[]; ports?: unknown[]; volumeMounts: { name: string; mountPath: string }[] }[];
  volumes: { name: string; configMap?: unknown; projected?: { sources?: { serviceAccountToken?: { audience: string; expirationSeconds?: number; path: string } }[] } }[];
}

/** What `kubectl kustomize DIR` renders, as objects (kubectl builds kustomizations offline). */
function kustomize(dir: string): Doc[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  assert.equal(r.error, undefined, `kubectl: ${r.error?.message}`);
  assert.equal(r.status, 0, `kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc);
}

const key = (d: Doc) => `${d.kind} ${d.metadata.namespace ?? ''}/${d.metadata.name}`;

describe('deploy/ as kustomize builds it', () => {
  const overlays = fs.readdirSync(path.join(deployRoot, 'overlays')).sort();

  it('deploy/ renders exactly the base objects', () => {
    const rendered = kustomize(deployRoot);
    assert.deepEqual(rendered.map(key).sort(), docs().map(key).sort());
  });

  for (const overlay of overlays) {
    it(`overlay ${overlay}: renders every base object, and each validates against its schema`, () => {
      const rendered = kustomize(path.join(deployRoot, 'overlays', overlay));
      assert.deepEqual(rendered.map(key).sort(), docs().map(key).sort(), 'an overlay changes objects, it adds or drops none');
      for (const d of rendered) {
        const Model = MODELS[d.kind];
        assert.ok(Model, `no schema model for ${d.kind}`);
        assert.doesNotThrow(() => new Model(d as never).validate(), `${overlay}: ${key(d)}`);
      }
    });
  }

  it('overlay k3s: sluice-cni goes into k3s\'s CNI directories, nothing else moves', () => {
    const pod = (docs: Doc[]) => (docs.find((d) => d.kind === 'DaemonSet')!.spec as { template: { spec: { volumes: { name: string; hostPath?: { path: string } }[] } } }).template.spec;
    const paths = (docs: Doc[]) => Object.fromEntries(pod(docs).volumes.filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]));
    const base = paths(docs());
    const k3s = paths(kustomize(path.join(deployRoot, 'overlays', 'k3s')));
    assert.deepEqual(k3s, { ...base, 'cni-bin': '/var/lib/rancher/k3s/data/current/bin', 'cni-conf': '/var/lib/rancher/k3s/agent/etc/cni/net.d' });
  });

  it('overlay debug: agents and the control plane log at debug, through variables their flags do not override', () => {
    const rendered = kustomize(path.join(deployRoot, 'overlays', 'debug'));
    const container = (kind: string) => (rendered.find((d) => d.kind === kind)!.spec as { template: { spec: { containers: { env?: { name: string; value?: string }[]; args: string[] }[] } } }).template.spec.containers[0];
    const agent = container('DaemonSet');
    const control = container('Deployment');
    assert.equal(agent.env?.find((e) => e.name === 'SLUICE_LOG_LEVEL')?.value, 'debug');
    assert.equal(control.env?.find((e) => e.name === 'SLUICE_CONTROL_LOG_LEVEL')?.value, 'debug');
    assert.ok(![...agent.args, ...control.args].some((a) => a.startsWith('--log-level')), 'no flag wins over the variable');
    assert.equal(loadAgentConfig(agent.args.map((a) => a.replace('$(NODE_NAME)', 'n').replace('$(HOST_IP)', '10.0.0.1')), { SLUICE_LOG_LEVEL: 'debug' }).logLevel, 'debug');
    assert.equal(loadControlConfig(control.args, { SLUICE_CONTROL_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  });
});

describe('the control plane stays available', () => {
  it('two replicas, spread over nodes, one Lease electing the status writer, and a PodDisruptionBudget keeping one', () => {
    const dep = docs().find((d) => d.kind === 'Deployment' && d.metadata.name === 'sluice-control')!;
    const spec = dep.spec as { replicas: number; selector: { matchLabels: Record<string, string> }; template: { spec: { affinity?: { podAntiAffinity?: unknown }; containers: { args: string[]; env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[] }[] } } };
    assert.ok(spec.replicas >= 2, 'more than one replica');
    assert.ok(spec.template.spec.affinity?.podAntiAffinity, 'replicas prefer different nodes');
    const control = spec.template.spec.containers[0];
    assert.equal(loadControlConfig(control.args, {}).leaderElectionLease, 'sluice-system/sluice-control');
    assert.equal(control.env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', 'each replica has its own identity in the Lease');
    const pdb = docs().find((d) => d.kind === 'PodDisruptionBudget' && d.metadata.name === 'sluice-control')!;
    const pdbSpec = pdb.spec as { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    assert.equal(pdbSpec.minAvailable, 1);
    assert.deepEqual(pdbSpec.selector.matchLabels, spec.selector.matchLabels);
  });
});
