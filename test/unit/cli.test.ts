// The four binaries as an operator meets them: help for every command, exit
// codes (0 ok, 1 failure or a "no" verdict, 2 usage), errors on stderr only,
// version, completion scripts a shell accepts, output complete in a pipe,
// sluicectl trace's error cases, and sluicectl --control against a real
// sluice-control. Nothing here needs root.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentProgram } from '../../src/agent/command-line';
import { ctlProgram } from '../../src/cli/command-line';
import { type ProgramDecl, withBuiltins } from '../../src/command-line';
import { controlProgram } from '../../src/control/command-line';
import { simProgram } from '../../src/sim/command-line';

const projectRoot = path.resolve(__dirname, '..', '..', '..');
const bin = (name: string) => path.join(projectRoot, 'bin', name);
const version = (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
const programs: ProgramDecl[] = [agentProgram, controlProgram, simProgram, ctlProgram];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a binary with stdout and stderr into pipes; never blocks the event loop (fake servers live in it). */
function run(program: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20000): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin(program), ...args], { env: { ...process.env, SLUICE_ADMIN: '', SLUICE_CONTROL_ADMIN: '', ...env }, timeout: timeoutMs });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/** Runs a binary with stdout into a file; returns the exit code and the file's size. */
function runToFile(program: string, args: string[], file: string): { code: number | null; bytes: number } {
  const fd = fs.openSync(file, 'w');
  try {
    const r = spawnSync(process.execPath, [bin(program), ...args], { stdio: ['ignore', fd, 'pipe'], timeout: 20000 });
    return { code: r.status, bytes: fs.statSync(file).size };
  } finally {
    fs.closeSync(fd);
  }
}

/** A mesh of n services (each with one pod) as manifest YAML. */
function manifests(n: number): string {
  const docs = ['apiVersion: v1\nkind: Namespace\nmetadata: { name: big, labels: { sluice.dev/mesh: enabled } }\n'];
  for (let i = 0; i < n; i++) {
    docs.push(
      `apiVersion: v1\nkind: Pod\nmetadata: { name: p${i}, namespace: big, labels: { app: a${i} } }\n` +
        `spec:\n  nodeName: node-1\n  containers: [{ name: c, command: ["sleep", "1"] }]\n` +
        `status: { podIP: 10.244.${1 + Math.floor(i / 200)}.${2 + (i % 200)}, hostIP: 10.250.0.1 }\n`,
    );
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: { name: s${i}, namespace: big }\n` +
        `spec:\n  clusterIP: 10.96.${Math.floor(i / 250)}.${1 + (i % 250)}\n  selector: { app: a${i} }\n  ports: [{ port: 80, targetPort: 8080 }]\n`,
    );
  }
  return docs.join('---\n');
}

type Route = (url: URL) => { status?: number; body: unknown };

/** A stand-in admin endpoint on a unix socket; records the paths asked for. */
class FakeAdmin {
  readonly asked: string[] = [];
  private readonly server: http.Server;

  constructor(
    readonly socket: string,
    private readonly routes: Record<string, Route>,
  ) {
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://local');
      this.asked.push(`${url.pathname}${url.search}`);
      const route = this.routes[url.pathname];
      const { status = 200, body } = route ? route(url) : { status: 404, body: { error: `no such endpoint ${url.pathname}` } };
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socket, resolve));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cli-test-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('every binary: help, version, usage errors', () => {
  it('--help of every command exits 0 and names the command\'s flags', async () => {
    const cases = programs.flatMap((p) => withBuiltins(p).commands.map((c) => ({ p, c })));
    // Four at a time: a 2-core machine starting forty Node processes at once
    // would time some of them out.
    const results: Result[] = [];
    for (let i = 0; i < cases.length; i += 4) {
      results.push(...(await Promise.all(cases.slice(i, i + 4).map(({ p, c }) => run(p.name, [c.name, '--help'])))));
    }
    cases.forEach(({ p, c }, i) => {
      const r = results[i];
      const what = `${p.name} ${c.name} --help`;
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.equal(r.stderr, '', what);
      assert.match(r.stdout, new RegExp(`^usage: ${p.name} \\[?${c.name}`), what);
      for (const f of c.flags ?? []) assert.ok(r.stdout.includes(`--${f.name}`), `${what} names --${f.name}`);
      assert.ok(r.stdout.includes('--help'), what);
    });
  });

  it('--help, -h and "help" of the program exit 0 and list the commands', async () => {
    for (const p of programs) {
      const results = await Promise.all([run(p.name, ['--help']), run(p.name, ['-h']), run(p.name, ['help'])]);
      for (const r of results) {
        assert.equal(r.code, 0, `${p.name}: ${r.stderr}`);
        for (const c of p.commands) assert.match(r.stdout, new RegExp(`\\n  ${c.name} `), `${p.name} help lists ${c.name}`);
        assert.match(r.stdout, /completion/);
        assert.match(r.stdout, /Exit codes: 0/);
      }
    }
    const r = await run('sluicectl', ['help', 'trace']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: sluicectl trace --from NAMESPACE\/POD --to IP:PORT/);
  });

  it('"version" and --version print the package version', async () => {
    for (const p of programs) {
      for (const args of [['version'], ['--version']]) {
        const r = await run(p.name, args);
        assert.equal(r.code, 0, `${p.name} ${args[0]}: ${r.stderr}`);
        assert.equal(r.stdout, `${p.name} ${version} (Node.js ${process.version})\n`);
      }
    }
  });

  it('an unknown flag exits 2, says so on stderr with a hint to --help, and prints nothing on stdout', async () => {
    const cases: [string, string[], RegExp][] = [
      ['sluice-agent', ['--node-name', 'n', '--proxy-prot', '1'], /^sluice-agent: unknown flag --proxy-prot\nRun "sluice-agent run --help" for usage\.\n$/],
      ['sluice-control', ['render', '--manifests', '/x', '--listen', '1.2.3.4:5'], /^sluice-control: unknown flag --listen for "render" \(it is a flag of "serve"\)\n.*--help/],
      ['sluice-sim', ['status', '--nope'], /^sluice-sim: unknown flag --nope\nRun "sluice-sim status --help" for usage\.\n$/],
      ['sluicectl', ['--nope', 'status'], /^sluicectl: unknown flag --nope\nRun "sluicectl status --help" for usage\.\n$/],
      ['sluicectl', ['status', '--output'], /^sluicectl: flag --output needs a value \(FORMAT\)\n/],
      ['sluice-sim', ['--name'], /^sluice-sim: flag --name needs a value \(NAME\)\n/],
    ];
    for (const [p, args, message] of cases) {
      const r = await run(p, args);
      assert.deepEqual([r.code, r.stdout], [2, ''], `${p} ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  it('an unknown command exits 2 on stderr, and so does no command where one is needed', async () => {
    for (const p of programs) {
      const r = await run(p.name, ['frobnicate']);
      assert.deepEqual([r.code, r.stdout], [2, ''], p.name);
      assert.match(r.stderr, new RegExp(`^${p.name}: unknown command "frobnicate"\\nRun "${p.name} --help" for usage\\.\\n$`));
    }
    for (const p of ['sluice-sim', 'sluicectl']) {
      const r = await run(p, []);
      assert.deepEqual([r.code, r.stdout], [2, ''], p);
      assert.match(r.stderr, /a command is required.*\n.*--help/);
    }
  });

  it('invalid configuration exits 2 naming the flag, in the agent\'s format', async () => {
    const r = await run('sluice-agent', ['--node-name', 'n', '--snapshot', '/x', '--bpffs', '/b', '--cgroup', '/c', '--proxy-address', '10.0.0.1', '--proxy-port=70000']);
    assert.deepEqual([r.code, r.stdout], [2, '']);
    assert.match(r.stderr, /^sluice-agent: invalid agent configuration: --proxy-port: must be <= 65535 \(got 70000\)\n/);
    const env = await run('sluice-agent', ['--node-name', 'n', '--snapshot', '/x', '--bpffs', '/b', '--cgroup', '/c'], { SLUICE_PROXY_ADDRESS: '10.0.0.300' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /--proxy-address: must match format "ipv4" \(got "10.0.0.300"\)/);
  });

  it('sluice-sim argument errors exit 2 before anything is touched', async () => {
    for (const [args, message] of [
      [['exec', 'shop/client'], /"exec" needs -- CMD/],
      [['agent', 'node-1', 'bounce'], /agent ACTION "bounce": expected one of stop, start, restart/],
      [['up', '--nodes', '2'], /"up" needs --filename FILE/],
      [['up', '-f', '/nonexistent.yaml', '--nodes', '99'], /--nodes 99: must be 1-16/],
    ] as [string[], RegExp][]) {
      const r = await run('sluice-sim', args);
      assert.deepEqual([r.code, r.stdout], [2, ''], args.join(' '));
      assert.match(r.stderr, message);
    }
  });
});

describe('completion', () => {
  it('completion bash passes bash -n for every binary, and so does zsh where zsh is installed', async () => {
    const hasZsh = spawnSync('zsh', ['-c', 'true']).status === 0;
    for (const p of programs) {
      const r = await run(p.name, ['completion', 'bash']);
      assert.equal(r.code, 0, r.stderr);
      const file = path.join(dir, `${p.name}.bash`);
      fs.writeFileSync(file, r.stdout);
      const check = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
      assert.equal(check.status, 0, `${p.name} completion bash: ${check.stderr}`);
      if (hasZsh) {
        const z = await run(p.name, ['completion', 'zsh']);
        fs.writeFileSync(`${file}.zsh`, z.stdout);
        assert.equal(spawnSync('zsh', ['-n', `${file}.zsh`]).status, 0);
      }
      const fish = await run(p.name, ['completion', 'fish']);
      assert.equal(fish.code, 0);
      assert.match(fish.stdout, new RegExp(`^complete -c ${p.name} `, 'm'));
    }
    const bad = await run('sluicectl', ['completion', 'powershell']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /SHELL "powershell": expected one of bash, zsh, fish/);
  });

  it('the bash script completes commands, flags, flag values and argument choices', async () => {
    const complete = async (program: string, words: string[]) => {
      const script = (await run(program, ['completion', 'bash'])).stdout;
      const fn = `_${program.replace(/[^A-Za-z0-9]/g, '_')}_complete`;
      const line = `${script}\nCOMP_WORDS=(${[program, ...words].map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length}; ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = spawnSync('bash', ['-c', line], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter(Boolean).sort();
    };
    assert.deepEqual(await complete('sluicectl', ['tr']), ['trace']);
    assert.deepEqual(await complete('sluicectl', ['trace', '--f']), ['--from']);
    assert.deepEqual(await complete('sluicectl', ['-o', '']), ['json', 'table', 'yaml']);
    assert.deepEqual(await complete('sluicectl', ['--admin', '/x', 'con']), ['config', 'connections']);
    assert.deepEqual(await complete('sluice-sim', ['agent', 'node-1', 're']), ['restart']);
    assert.deepEqual(await complete('sluice-sim', ['completion', 'f']), ['fish']);
    assert.deepEqual(await complete('sluice-agent', ['--log-level', 'w']), ['warn']);
    assert.deepEqual(await complete('sluice-control', ['render', '--t']), ['--trust-domain']);
  });
});

describe('output is complete when piped', () => {
  it('sluice-control render writes the same bytes into a pipe as into a file (well over 64 KiB)', async () => {
    const file = path.join(dir, 'big.yaml');
    fs.writeFileSync(file, manifests(400));
    const toFile = runToFile('sluice-control', ['render', '--manifests', file], path.join(dir, 'render.json'));
    assert.equal(toFile.code, 0);
    assert.ok(toFile.bytes > 4 * 65536, `render wrote ${toFile.bytes} bytes`);
    const piped = await run('sluice-control', ['render', '--manifests', file]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(Buffer.byteLength(piped.stdout), toFile.bytes);
    assert.equal((JSON.parse(piped.stdout) as { services: unknown[] }).services.length, 400);
  });

  it('sluicectl -o json writes a large answer completely into a pipe', async () => {
    const services = Array.from({ length: 2000 }, (_, i) => ({
      namespace: 'big',
      name: `s${i}`,
      clusterIPs: [`10.96.${i >> 8}.${i & 255}`],
      ports: [{ port: 80, targetPort: 8080 }],
      endpoints: [{ address: `10.244.1.${i & 255}:8080`, node: 'node-1', ready: true }],
    }));
    const admin = new FakeAdmin(path.join(dir, 'big-admin.sock'), { '/services': () => ({ body: services }) });
    await admin.listen();
    try {
      const piped = await run('sluicectl', ['--admin', admin.socket, '-o', 'json', 'services']);
      assert.equal(piped.code, 0, piped.stderr);
      assert.ok(Buffer.byteLength(piped.stdout) > 4 * 65536);
      assert.equal((JSON.parse(piped.stdout) as unknown[]).length, 2000);
      const table = await run('sluicectl', ['--admin', admin.socket, 'services']);
      assert.equal(table.stdout.trimEnd().split('\n').length, 2001);
    } finally {
      await admin.close();
    }
  });
});

describe('sluicectl against an agent admin endpoint', () => {
  const trace = (verdict: string, extra: object = {}) => ({
    from: 'demo/web-1',
    to: '10.96.0.10:80',
    captured: verdict.startsWith('captured'),
    steps: [{ step: 'source', result: 'demo/web-1 on node-1' }],
    candidates: [],
    verdict,
    ...extra,
  });
  let answer: (url: URL) => { status?: number; body: unknown } = () => ({ body: trace('captured and allowed: relayed to one of 10.244.1.2:8080') });
  let admin: FakeAdmin;
  const ctl = (...args: string[]) => run('sluicectl', ['--admin', admin.socket, ...args]);

  before(async () => {
    admin = new FakeAdmin(path.join(dir, 'agent-admin.sock'), {
      '/trace': (url) => answer(url),
      '/status': () => answer(new URL('http://local/status')),
      '/maps': () => ({ body: { error: 'datapath not loaded' } }),
    });
    await admin.listen();
  });
  after(() => admin.close());

  it('trace exits 0 for a connection that would be captured and allowed', async () => {
    const r = await ctl('trace', '--from', 'demo/web-1', '--to', '10.96.0.10:80');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /verdict: captured and allowed/);
    assert.equal(admin.asked.at(-1), '/trace?from=demo%2Fweb-1&to=10.96.0.10%3A80');
  });

  it('trace exits 1 for a verdict of denied, reset or not captured, printing the trace', async () => {
    for (const verdict of ['captured, then denied: no ALLOW policy matched (1 applies)', 'captured, then reset: the service has no endpoints', 'not captured: the connection goes directly to its destination', 'not on this node']) {
      answer = () => ({ body: trace(verdict) });
      const r = await ctl('trace', '--from=demo/web-1', '--to=10.96.0.10:80');
      assert.equal(r.code, 1, verdict);
      assert.ok(r.stdout.includes(`verdict: ${verdict}`), r.stdout);
      const json = await ctl('-o', 'json', 'trace', '--from', 'demo/web-1', '--to', '10.96.0.10:80');
      assert.equal(json.code, 1);
      assert.equal((JSON.parse(json.stdout) as { verdict: string }).verdict, verdict);
    }
  });

  it('trace of a pod the agent does not know exits 1 with a message on stderr', async () => {
    answer = (url) => ({ body: { ...trace('unknown source'), from: url.searchParams.get('from'), steps: [{ step: 'source', result: 'no workload demo/ghost is known to this agent' }] } });
    const r = await ctl('trace', '--from', 'demo/ghost', '--to', '10.96.0.10:80');
    assert.deepEqual([r.code, r.stdout], [1, '']);
    assert.match(r.stderr, /^sluicectl: trace: no workload demo\/ghost is known to the agent at .*agent-admin\.sock/);
  });

  it('trace with --to that is not IP:PORT, or --from that is not NAMESPACE/POD, exits 2 without asking', async () => {
    const before = admin.asked.length;
    for (const [args, message] of [
      [['--from', 'demo/web-1', '--to', 'web:80'], /--to "web:80": expected IP:PORT/],
      [['--from', 'demo/web-1', '--to', '10.96.0.10'], /--to "10\.96\.0\.10": expected IP:PORT/],
      [['--from', 'demo/web-1', '--to', '10.96.0.10:99999'], /expected IP:PORT/],
      [['--from', 'web-1', '--to', '10.96.0.10:80'], /--from "web-1": expected NAMESPACE\/POD/],
      [['--from', 'demo/web-1'], /"trace" needs --to IP:PORT/],
    ] as [string[], RegExp][]) {
      const r = await ctl('trace', ...args);
      assert.deepEqual([r.code, r.stdout], [2, ''], args.join(' '));
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Run "sluicectl trace --help"/);
    }
    assert.equal(admin.asked.length, before);
  });

  it('an answer of an unexpected shape exits 1 naming what differs, never with a TypeError', async () => {
    const cases: [unknown, RegExp][] = [
      [{ from: 'a/b', to: 'x', steps: 'nope', candidates: [], verdict: 'v' }, /unexpected answer from the agent at .* for \/trace: trace\.steps: expected a list, got string "nope"/],
      [{ from: 'a/b', to: 'x', steps: [{ step: 'source' }], candidates: [] }, /trace\.verdict: missing/],
      ['<html>not json</html>', /for \/trace: trace: expected an object, got string/],
      [[1, 2, 3], /trace: expected an object, got a list/],
      [null, /trace: expected an object, got null/],
    ];
    for (const [body, message] of cases) {
      answer = () => ({ body });
      const r = await ctl('trace', '--from', 'demo/web-1', '--to', '10.96.0.10:80');
      assert.deepEqual([r.code, r.stdout], [1, ''], JSON.stringify(body));
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /TypeError|    at /);
    }
  });

  it('an error answer exits 1 with the endpoint\'s message', async () => {
    answer = () => ({ status: 400, body: { error: 'trace needs from=NAMESPACE/POD and to=IP:PORT' } });
    let r = await ctl('trace', '--from', 'demo/web-1', '--to', '10.96.0.10:80');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^sluicectl: the agent at .* answered 400 for \/trace: trace needs from=NAMESPACE\/POD and to=IP:PORT\n$/);
    r = await ctl('maps');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^sluicectl: the agent at .* says: datapath not loaded\n$/);
  });

  it('status shows the connection budget, map fill, resync and tunnels', async () => {
    answer = () => ({
      body: {
        node: 'node-1', ready: true, pending: [], uptimeSeconds: 5, proxy: '10.0.0.1:15001', relay: 'splice, 1 thread(s)',
        bpf: { attached: [] }, config: { version: 'v', source: 'control plane x' }, enrolled: [], activeConnections: 3,
        connectionBudget: { maxConnections: 100, maxPerSource: 25, inUse: 3, waiting: 2 },
        mapFill: { sluice_vips: { entries: 4, capacity: 65536, admitted: { entries: 4, limit: 1000 }, rejectedResources: 1 } },
        resync: { intervalSeconds: 30, last: '2026-11-30T00:00:00.000Z', repairs: 7 },
        mapSync: {
          failingKeys: 3, retries: 4, nextRetryInMs: 1500, backoffMs: 8000,
          failing: [{ map: 'sluice_strict', key: 'ifindex 7', op: 'attach', error: 'EMFILE', since: '2026-11-30T00:00:01.000Z', passes: 5 }],
        },
        tunnels: { openSessions: 2, streamsOpened: 9, server: { accepted: 5 } },
      },
    });
    const r = await ctl('status');
    assert.match(r.stdout, /^map sync: +3 key\(s\) failing, next retry in 1s$/m);
    assert.match(r.stdout, /^ +sluice_strict ifindex 7: attach failed 5 time\(s\) since 2026-11-30T00:00:01\.000Z: EMFILE$/m);
    assert.match(r.stdout, /^ +\.\.\. and 2 more$/m);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^budget: +3 of 100 connections, 25 per pod, 2 waiting$/m);
    assert.match(r.stdout, /^map fill: +sluice_vips 4\/65536, admitted 4\/1000, 1 resource\(s\) rejected$/m);
    assert.match(r.stdout, /^resync: +every 30 s, last 2026-11-30T00:00:00\.000Z, 7 repair\(s\)$/m);
    assert.match(r.stdout, /^tunnels: +2 session\(s\) out, 9 stream\(s\) opened, 5 accepted in$/m);
  });

  it('status pointed at a control plane says to use --control', async () => {
    answer = () => ({ body: { version: 'v1', listen: '0.0.0.0:15010', manifests: '/m', streams: [] } });
    const r = await ctl('status');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unexpected answer from the agent .* \(that is a control plane: use --control\)/);
  });

  it('an endpoint that is not there exits 1 saying which', async () => {
    const r = await run('sluicectl', ['--admin', path.join(dir, 'nothing.sock'), 'status']);
    assert.deepEqual([r.code, r.stdout], [1, '']);
    assert.match(r.stderr, /cannot reach the agent at .*nothing\.sock: .*ENOENT.*\(is the agent running\? pass --admin SOCKET\|HOST:PORT\)/);
    const bad = await run('sluicectl', ['--admin', 'localhost', 'status']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--admin: "localhost" is not a unix socket path/);
  });
});

describe('sluicectl --control against sluice-control serve', () => {
  const socket = path.join(dir, 'control.sock');
  let control: ReturnType<typeof spawn>;
  let exited: Promise<number | null>;

  before(async () => {
    const file = path.join(dir, 'mesh.yaml');
    fs.writeFileSync(file, manifests(3));
    control = spawn(process.execPath, [bin('sluice-control'), 'serve', '--manifests', file, '--admin-socket', socket, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--log-file', path.join(dir, 'control.log')], {
      stdio: 'ignore',
      env: { ...process.env, SLUICE_CONTROL_NODE_SECRET_FILE: '' },
    });
    exited = new Promise((resolve) => control.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(fs.existsSync(socket), 'sluice-control serves its admin socket');
  });

  after(async () => {
    if (control.exitCode === null) control.kill('SIGTERM');
    await exited;
  });

  it('status prints the control plane\'s version, manifests and agents', async () => {
    const r = await run('sluicectl', ['--control', socket, 'status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^version: +\S+/);
    assert.match(r.stdout, /manifests: +.*mesh\.yaml/);
    assert.match(r.stdout, /agents: +0 connected/);
    const json = await run('sluicectl', ['--control', socket, '-o', 'json', 'status']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { streams: unknown[] }).streams, []);
  });

  it('resources prints workloads, services and policies as tables, JSON or YAML', async () => {
    const r = await run('sluicectl', ['--control', socket, 'resources']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /WORKLOADS\nNAMESPACE +NAME +NODE/);
    assert.match(r.stdout, /big +s2 +10\.96\.0\.3 +80->8080/);
    const json = await run('sluicectl', ['--control', socket, '-o', 'json', 'resources']);
    assert.equal((JSON.parse(json.stdout) as { services: unknown[] }).services.length, 3);
    const yaml = await run('sluicectl', ['--control', socket, '-o', 'yaml', 'resources']);
    assert.match(yaml.stdout, /^services:/m);
  });

  it('agents lists the connected agents (none here)', async () => {
    const r = await run('sluicectl', ['--control', socket, 'agents']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NODE +PEER +CONNECTED +RESOURCES SENT +LAST NACK\n\(none\)\n$/);
    const env = await run('sluicectl', ['-o', 'json', 'agents'], { SLUICE_CONTROL_ADMIN: socket });
    assert.deepEqual(JSON.parse(env.stdout), []);
  });

  it('agent commands with --control exit 2; agent status pointed at it says to use --control', async () => {
    const r = await run('sluicectl', ['--control', socket, 'maps']);
    assert.deepEqual([r.code, r.stdout], [2, '']);
    assert.match(r.stderr, /"maps" asks an agent; with --control the commands are status, resources and agents/);
    const wrong = await run('sluicectl', ['--admin', socket, 'status']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /that is a control plane: use --control/);
  });

  it('stops with exit code 0 on SIGTERM', async () => {
    control.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
