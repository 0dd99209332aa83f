// The shared command line: the argv forms that tests, the benchmarks and the
// demo script use parse exactly as before, and every binary's declaration is
// free of contradictions.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentProgram } from '../../src/agent/command-line';
import { ctlProgram } from '../../src/cli/command-line';
import {
  type ProgramDecl,
  UsageError,
  commandHelp,
  completionScript,
  declarationProblems,
  parseCommandLine,
  programHelp,
  withBuiltins,
} from '../../src/command-line';
import { controlProgram } from '../../src/control/command-line';
import { simProgram } from '../../src/sim/command-line';

const programs: ProgramDecl[] = [agentProgram, controlProgram, simProgram, ctlProgram];

/** What a parse gives, without the declaration object. */
function parse(program: ProgramDecl, argv: string[]) {
  const p = parseCommandLine(program, argv);
  return { command: p.command, values: p.values, args: p.args, ...(p.rest ? { rest: p.rest } : {}) };
}

describe('command-line forms in use keep their meaning', () => {
  const sim = (argv: string[]) => parse(simProgram, argv);

  it('sluice-sim, as test/helpers/sim-fixture.ts calls it', () => {
    assert.deepEqual(sim(['--name', 'e2e', 'up', '-f', '/t/m1.yaml', '--nodes', '2']), { command: 'up', values: { name: 'e2e', filename: ['/t/m1.yaml'], nodes: '2' }, args: [] });
    assert.deepEqual(sim(['--name', 'e2e', 'apply', '-f', '/t/m2.yaml']), { command: 'apply', values: { name: 'e2e', filename: ['/t/m2.yaml'] }, args: [] });
    assert.deepEqual(sim(['--name', 'e2e', 'delete', '-f', '/t/m3.yaml']), { command: 'delete', values: { name: 'e2e', filename: ['/t/m3.yaml'] }, args: [] });
    assert.deepEqual(sim(['exec', 'shop/client', '--name', 'e2e', '--', 'curl', '-sS', '--max-time', '5', 'http://10.96.1.1/']), {
      command: 'exec',
      values: { name: 'e2e' },
      args: ['shop/client'],
      rest: ['curl', '-sS', '--max-time', '5', 'http://10.96.1.1/'],
    });
    assert.deepEqual(sim(['exec', 'shop/client', '--name', 'e2e', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']).rest, ['sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.deepEqual(sim(['--name', 'e2e', 'status', '-o', 'json']), { command: 'status', values: { name: 'e2e', output: 'json' }, args: [] });
    assert.deepEqual(sim(['--name', 'e2e', 'ctl', 'node-1', '--', '-o', 'json', 'certs']), { command: 'ctl', values: { name: 'e2e' }, args: ['node-1'], rest: ['-o', 'json', 'certs'] });
    assert.deepEqual(sim(['--name', 'e2e', 'ctl', 'node-1', '--', 'status']), { command: 'ctl', values: { name: 'e2e' }, args: ['node-1'], rest: ['status'] });
    assert.deepEqual(sim(['--name', 'e2e', 'agent', 'node-1', 'stop']), { command: 'agent', values: { name: 'e2e' }, args: ['node-1', 'stop'] });
    assert.deepEqual(sim(['--name', 'e2e', 'control', 'start']), { command: 'control', values: { name: 'e2e' }, args: ['start'] });
    assert.deepEqual(sim(['--name', 'e2e', 'down']), { command: 'down', values: { name: 'e2e' }, args: [] });
  });

  it('sluice-sim, as the benchmarks and the demo script call it', () => {
    assert.deepEqual(sim(['up', '-f', '/b/m.yaml', '--nodes', '2', '--name', 'bench']), { command: 'up', values: { filename: ['/b/m.yaml'], nodes: '2', name: 'bench' }, args: [] });
    assert.deepEqual(sim(['exec', 'bench/client', '--name', 'bench', '--', 'node', 'driver.js', '--rate', '100']).rest, ['node', 'driver.js', '--rate', '100']);
    assert.deepEqual(sim(['status', '-o', 'json', '--name', 'bench']), { command: 'status', values: { output: 'json', name: 'bench' }, args: [] });
    assert.deepEqual(sim(['agent', 'node-1', 'restart', '--name', 'bench']), { command: 'agent', values: { name: 'bench' }, args: ['node-1', 'restart'] });
    assert.deepEqual(sim(['ctl', 'node-1', '--name', 'bench', '--', '-o', 'json', 'status']), { command: 'ctl', values: { name: 'bench' }, args: ['node-1'], rest: ['-o', 'json', 'status'] });
    assert.deepEqual(sim(['down', '--name', 'bench']), { command: 'down', values: { name: 'bench' }, args: [] });
    assert.deepEqual(sim(['up', '-f', 'examples/hello-mesh.yaml']), { command: 'up', values: { filename: ['examples/hello-mesh.yaml'] }, args: [] });
    assert.deepEqual(sim(['ctl', 'node-1', '--', 'maps']), { command: 'ctl', values: {}, args: ['node-1'], rest: ['maps'] });
  });

  it('sluice-sim -f takes the words after it as more files, and -f may repeat', () => {
    assert.deepEqual(sim(['up', '-f', 'a.yaml', 'b.yaml', '--nodes', '3']).values, { filename: ['a.yaml', 'b.yaml'], nodes: '3' });
    assert.deepEqual(sim(['apply', '-f', 'a.yaml', '-f', 'b.yaml']).values, { filename: ['a.yaml', 'b.yaml'] });
    assert.deepEqual(sim(['apply', '--filename=a.yaml']).values, { filename: ['a.yaml'] });
  });

  it('sluicectl, as sluice-sim ctl and the e2e tests call it', () => {
    const ctl = (argv: string[]) => parse(ctlProgram, argv);
    assert.deepEqual(ctl(['--admin', '/run/a.sock', '-o', 'json', 'status']), { command: 'status', values: { admin: '/run/a.sock', output: 'json' }, args: [] });
    assert.deepEqual(ctl(['--admin', '/run/a.sock', 'status']), { command: 'status', values: { admin: '/run/a.sock' }, args: [] });
    assert.deepEqual(ctl(['--admin', '/run/a.sock', 'trace', '--from', 'demo/web-1', '--to', '10.96.0.10:80']), {
      command: 'trace',
      values: { admin: '/run/a.sock', from: 'demo/web-1', to: '10.96.0.10:80' },
      args: [],
    });
    assert.deepEqual(ctl(['--admin=/run/a.sock', '--output=yaml', 'trace', '--from=demo/web-1', '--to=10.96.0.10:80']).values, {
      admin: '/run/a.sock',
      output: 'yaml',
      from: 'demo/web-1',
      to: '10.96.0.10:80',
    });
    assert.deepEqual(ctl(['-ojson', 'certs', '--admin', '/s']), { command: 'certs', values: { output: 'json', admin: '/s' }, args: [] });
  });

  it('sluice-agent and sluice-control, as the integration tests start them', () => {
    const agent = parse(agentProgram, ['--node-name', 'node-1', '--snapshot', '/t/s.json', '--bpffs', '/sys/fs/bpf/t', '--proxy-port', '15001', '--admin-port', '0']);
    assert.equal(agent.command, 'run');
    assert.deepEqual(agent.values, { 'node-name': 'node-1', snapshot: '/t/s.json', bpffs: '/sys/fs/bpf/t', 'proxy-port': '15001', 'admin-port': '0' });
    const control = parse(controlProgram, ['--manifests', '/t/m', '--listen', '127.0.0.1:15010', '--metrics-listen', '127.0.0.1:0', '--admin-socket', '/t/c.sock', '--log-file', '/t/c.log']);
    assert.deepEqual(control, { command: 'serve', values: { manifests: '/t/m', listen: '127.0.0.1:15010', 'metrics-listen': '127.0.0.1:0', 'admin-socket': '/t/c.sock', 'log-file': '/t/c.log' }, args: [] });
    assert.equal(parse(controlProgram, ['serve', '--manifests', '/t/m']).command, 'serve');
    assert.equal(parse(controlProgram, ['render', '--manifests=/t/m']).command, 'render');
  });
});

describe('command-line errors', () => {
  const usage = (program: ProgramDecl, argv: string[], message: RegExp) =>
    assert.throws(() => parseCommandLine(program, argv), (e: Error) => e instanceof UsageError && message.test(e.message));

  it('names the unknown flag, the flag without a value, the unknown command', () => {
    usage(simProgram, ['status', '--bogus'], /^unknown flag --bogus$/);
    usage(simProgram, ['status', '-x'], /^unknown flag -x$/);
    usage(simProgram, ['status', '--name'], /^flag --name needs a value \(NAME\)$/);
    usage(simProgram, ['launch'], /^unknown command "launch"$/);
    usage(agentProgram, ['--node-name', 'n', '--proxy-prot', '1'], /^unknown flag --proxy-prot$/);
    usage(ctlProgram, ['--bogus', 'x', 'status'], /^unknown flag --bogus$/);
    usage(ctlProgram, ['status', '--from', 'a/b'], /unknown flag --from for "status" \(it is a flag of "trace"\)/);
    usage(ctlProgram, ['-o', 'xml', 'status'], /-o xml: expected one of table, json, yaml/);
    usage(ctlProgram, ['--help=yes'], /flag --help takes no value/);
  });

  it('checks arguments, their choices, required flags and "--"', () => {
    usage(simProgram, ['exec', 'shop/client'], /"exec" needs -- CMD/);
    usage(simProgram, ['exec', '--', 'true'], /"exec" needs NAMESPACE\/POD/);
    usage(simProgram, ['agent', 'node-1', 'bounce'], /ACTION "bounce": expected one of stop, start, restart/);
    usage(simProgram, ['status', 'extra'], /"status" takes no arguments; unexpected argument "extra"/);
    usage(simProgram, ['status', '--', 'x'], /"status" takes nothing after "--"/);
    usage(simProgram, ['up', '--nodes', '2'], /"up" needs --filename FILE/);
    usage(ctlProgram, ['trace', '--from', 'a/b'], /"trace" needs --to IP:PORT/);
    usage(agentProgram, ['foo'], /unknown command "foo"/);
  });

  it('does not check arguments when help is asked for', () => {
    assert.equal(parseCommandLine(simProgram, ['exec', '--help']).values.help, true);
    assert.equal(parseCommandLine(ctlProgram, ['trace', '-h']).values.help, true);
  });
});

describe('declarations, help and completion', () => {
  it('no declaration contradicts itself', () => {
    for (const p of programs) assert.deepEqual(declarationProblems(p), [], p.name);
  });

  it('help lists every command, and each command\'s help its flags', () => {
    for (const p of programs) {
      const full = withBuiltins(p);
      const text = programHelp(p);
      for (const c of full.commands) {
        assert.match(text, new RegExp(`\\n  ${c.name} `), `${p.name} --help lists ${c.name}`);
        const help = commandHelp(p, c);
        for (const f of [...(c.flags ?? []), ...full.flags]) assert.ok(help.includes(`--${f.name}`), `${p.name} ${c.name} --help names --${f.name}`);
      }
    }
  });

  it('completion scripts name every command and flag', () => {
    for (const p of programs) {
      const full = withBuiltins(p);
      for (const shell of ['bash', 'zsh', 'fish'] as const) {
        const script = completionScript(p, shell);
        for (const c of full.commands) assert.ok(script.includes(c.name), `${p.name} ${shell} completes ${c.name}`);
        for (const f of [...full.flags, ...full.commands.flatMap((c) => c.flags ?? [])]) {
          assert.ok(script.includes(shell === 'fish' ? `-l ${f.name}` : `--${f.name}`), `${p.name} ${shell} completes --${f.name}`);
        }
      }
    }
  });
});
