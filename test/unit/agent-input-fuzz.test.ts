// Generated mutations of what reaches the agent's side of the mesh from
// outside: the xDS resources it receives, sluice-cni's stdin and
// environment, the target and source address of a tunnel CONNECT request,
// and the command lines of every binary. The corpus comes from a fixed seed,
// so a failure names a case that replays exactly. Each input must be either
// accepted (and then valid) or refused by the error its parser declares,
// never a TypeError or RangeError thrown out of the parser.
// (sluice-control's objects: control-input-fuzz.test.ts.)
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentProgram } from '../../src/agent/command-line';
import { ctlProgram } from '../../src/cli/command-line';
import { CniError, hostInterfaceOf, parseNetConf, podFromArgs, readCniEnv, resultIps } from '../../src/cni/cni-spec';
import { pluginConf } from '../../src/cni/plugin-conf';
import { UsageError, parseCommandLine, withBuiltins, type ProgramDecl } from '../../src/command-line';
import { controlProgram } from '../../src/control/command-line';
import type { AuthorizationPolicy, PeerAuthentication } from '../../src/model/policy';
import { validateService, validateWorkload } from '../../src/model/validate';
import { defaultLoadBalancing, type Service, type Workload } from '../../src/model/resources';
import { parseForwardedFor } from '../../src/proxy/connection-decision';
import { parseConnectTarget } from '../../src/proxy/tunnel-server';
import { simProgram } from '../../src/sim/command-line';
import { authorizationPolicyCodec, peerAuthenticationCodec, serviceCodec, workloadCodec, type ResourceCodec } from '../../src/xds/resource-types';
import { seededRandom } from '../helpers/seeded-random';

const SEED = 0x51c3;

const rnd = seededRandom(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];

/** Values of every JSON type and the edges parsers trip on. */
const ODD_VALUES: unknown[] = [null, true, 0, -1, 1.5, 65536, 2 ** 53, '', ' ', '80', 'x'.repeat(5000), '../..', '10.0.0.1', '::1', '\u0000', [], [null], [1, 2], {}, { a: 1 }, 'NaN', '1e999'];

/** One field of a nested value, at random, set to an odd value (or removed). */
function mutate(value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, at: (string | number)[]) => {
    if (at.length) paths.push(at);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...at, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
  };
  walk(copy, []);
  if (paths.length === 0) return pick(ODD_VALUES);
  const path = pick(paths);
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (rnd() < 0.15) delete parent[last];
  else parent[last] = pick(ODD_VALUES);
  return copy;
}

/** Describes what a parser threw that it should not have: anything but its own error type. */
function unexpected(err: unknown, allowed: new (...args: never[]) => Error): string | undefined {
  if (err instanceof allowed) return undefined;
  return `${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`;
}

const workload: Workload = { uid: 'u1', name: 'web-1', namespace: 'shop', node: 'node-1', ips: ['10.244.1.5'], serviceAccount: 'web', labels: { app: 'web' }, identity: 'spiffe://cluster.local/ns/shop/sa/web', captured: true, ready: true, nodeAddress: '192.168.1.10' };
const service: Service = {
  name: 'web',
  namespace: 'shop',
  clusterIPs: ['10.96.0.10'],
  ports: [{ name: 'http', port: 80, targetPort: 8080 }],
  endpoints: [{ workloadUid: 'u1', address: '10.244.1.5', node: 'node-1', ready: true }],
  loadBalancing: defaultLoadBalancing,
};
const policy: AuthorizationPolicy = { name: 'allow', namespace: 'shop', selector: { app: 'web' }, action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['frontend'], ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { ports: [8080] } }] }] };
const peerAuthentication: PeerAuthentication = { name: 'default', namespace: 'shop', mode: 'STRICT' };

describe('fuzz: xDS resources the agent receives', () => {
  const cases: [string, ResourceCodec<unknown>, unknown, (v: unknown) => string | undefined][] = [
    ['Workload', workloadCodec as ResourceCodec<unknown>, workload, (v) => (typeof validateWorkload(v) === 'string' ? 'decoded but invalid' : undefined)],
    ['Service', serviceCodec as ResourceCodec<unknown>, service, (v) => (typeof validateService(v) === 'string' ? 'decoded but invalid' : undefined)],
    ['AuthorizationPolicy', authorizationPolicyCodec as ResourceCodec<unknown>, policy, () => undefined],
    ['PeerAuthentication', peerAuthenticationCodec as ResourceCodec<unknown>, peerAuthentication, () => undefined],
  ];
  for (const [kind, codec, valid, check] of cases) {
    it(`${kind}: 400 byte-level mutations decode to a valid resource or a reason, never an exception`, () => {
      const good = codec.encode(valid);
      assert.ok(typeof codec.decode(good) !== 'string', `the unmutated ${kind} decodes`);
      const failures: string[] = [];
      for (let i = 0; i < 400; i++) {
        const bytes = Buffer.from(good.value);
        const op = rnd();
        let mutated: Buffer;
        if (op < 0.4) {
          for (let n = 1 + Math.floor(rnd() * 4); n > 0; n--) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
          mutated = bytes;
        } else if (op < 0.7) mutated = bytes.subarray(0, Math.floor(rnd() * bytes.length));
        else mutated = Buffer.concat([bytes, Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)))]);
        try {
          const r = codec.decode({ type_url: good.type_url, value: mutated });
          const problem = typeof r === 'string' ? undefined : check(r);
          if (problem) failures.push(`case ${i} (${mutated.toString('hex')}): ${problem}`);
        } catch (err) {
          failures.push(`case ${i} (${mutated.toString('hex')}): threw ${(err as Error).message}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  }

  it('a resource of another type is refused by name', () => {
    const r = workloadCodec.decode({ ...serviceCodec.encode(service) });
    assert.match(String(r), /resource has type .*Service, expected .*Workload/);
  });
});

describe('fuzz: sluice-cni stdin and environment', () => {
  const conf = {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'sluice-cni',
    agentSocket: '/run/sluice/cni.sock',
    prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'veth1', mac: '00:11:22:33:44:55' }, { name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ address: '10.244.1.5/24', interface: 1 }] },
  };
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_UID=u1', CNI_PATH: '/opt/cni/bin' };

  it('600 mutations of the network configuration and the CNI_ variables: parsed, or a CniError, never another exception', () => {
    const failures: string[] = [];
    for (let i = 0; i < 600; i++) {
      const stdin = rnd() < 0.1 ? JSON.stringify(conf).slice(0, Math.floor(rnd() * 200)) : JSON.stringify(mutate(conf));
      const vars = rnd() < 0.5 ? env : (mutate(env) as Record<string, unknown>);
      const environment = Object.fromEntries(Object.entries(vars ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
      try {
        const cni = readCniEnv(environment);
        const parsed = parseNetConf(stdin);
        pluginConf(parsed.raw);
        // What ADD reads from the previous plugin's result and the arguments:
        resultIps(parsed.prevResult);
        hostInterfaceOf(parsed.prevResult, cni.ifname);
        podFromArgs(cni.args);
      } catch (err) {
        const problem = unexpected(err, CniError);
        if (problem) failures.push(`case ${i}: stdin ${stdin.slice(0, 300)} env ${JSON.stringify(environment).slice(0, 300)}: ${problem}`);
      }
    }
    assert.deepEqual(failures, []);
  });
});

describe('fuzz: tunnel CONNECT requests', () => {
  const pieces = ['10.244.1.5', '[fd00::5]', 'fd00::5', 'pod.local', '', ':', '8080', '0', '65536', '99999', '-1', '080', '\u0000', '%', '[', ']', '1.2.3.4.5', '999.1.1.1', ' '];

  it('2,000 generated :authority values: an IP and a port 1-65535, or a reason quoting the request', () => {
    const failures: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const authority = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => pick(pieces)).join(pick(['', ':', '']));
      try {
        const r = parseConnectTarget(authority);
        if (typeof r !== 'string' && !(r.port >= 1 && r.port <= 65535 && r.ip.length > 0)) failures.push(`${JSON.stringify(authority)} -> ${JSON.stringify(r)}`);
      } catch (err) {
        failures.push(`${JSON.stringify(authority)}: threw ${(err as Error).message}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.deepEqual(parseConnectTarget('10.244.1.5:8080'), { ip: '10.244.1.5', port: 8080 });
    assert.deepEqual(parseConnectTarget('[fd00::5]:443'), { ip: 'fd00::5', port: 443 });
    assert.match(String(parseConnectTarget('10.244.1.5:99999')), /port must be 1-65535/);
    assert.match(String(parseConnectTarget('pod.local:80')), /is not IP:PORT/);
  });

  it('2,000 generated forwarded headers: an address or nothing, never an exception', () => {
    const parts = ['for=', 'for="[', 'fd00::1', ']"', '10.0.0.1', ';', ',', ' ', 'by=x', 'FOR=', '"', 'x'.repeat(300)];
    for (let i = 0; i < 2000; i++) {
      const header = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => pick(parts)).join('');
      const r = parseForwardedFor(rnd() < 0.1 ? [header, header] : header);
      assert.ok(r === undefined || /^[0-9a-fA-F:.]+$/.test(r), `${JSON.stringify(header)} -> ${JSON.stringify(r)}`);
    }
  });
});

describe('fuzz: command lines', () => {
  const programs: [string, ProgramDecl][] = [
    ['sluice-agent', agentProgram],
    ['sluice-control', controlProgram],
    ['sluicectl', ctlProgram],
    ['sluice-sim', simProgram],
  ];
  for (const [name, program] of programs) {
    it(`${name}: 500 generated argument lists parse or fail with a UsageError`, () => {
      const declared = withBuiltins(program);
      const words = [
        ...declared.commands.map((c) => c.name),
        ...declared.flags.map((f) => `--${f.name}`),
        ...declared.commands.flatMap((c) => (c.flags ?? []).map((f) => `--${f.name}`)),
        '--', '-', '-x', '--no-such-flag', '=', '--name=', '', '0', '-1', '99999999999999999999', 'x'.repeat(300), '\u0000', 'a=b', '--help', 'help',
      ];
      const failures: string[] = [];
      for (let i = 0; i < 500; i++) {
        const argv = Array.from({ length: Math.floor(rnd() * 6) }, () => pick(words));
        try {
          parseCommandLine(program, argv);
        } catch (err) {
          const problem = unexpected(err, UsageError);
          if (problem) failures.push(`${JSON.stringify(argv)}: ${problem}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  }
});
