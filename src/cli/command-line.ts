// sluicectl's command line: the commands for an agent's admin endpoint, the
// ones for the control plane's (with --control), and their flags.
import { type CommandDecl, type ProgramDecl } from '../command-line';

/** Whose admin endpoint a command reads: an agent's, the control plane's, or either (status). */
export type Target = 'agent' | 'control' | 'either';

export const TARGET: Record<string, Target> = {
  status: 'either',
  maps: 'agent',
  connections: 'agent',
  config: 'agent',
  workloads: 'agent',
  services: 'agent',
  policies: 'agent',
  certs: 'agent',
  trace: 'agent',
  log: 'agent',
  'access-log': 'agent',
  resources: 'control',
  agents: 'control',
};

const commands: CommandDecl[] = [
  {
    name: 'status',
    summary: 'agent health, readiness blockers, capture programs, config version (with --control: the control plane\'s)',
    description: 'With --control: the control plane\'s version, manifests, rejected objects, xDS counters and connected agents.',
  },
  { name: 'maps', summary: 'kernel maps: enrollment, VIPs, live original destinations, counters' },
  { name: 'connections', summary: 'live proxied connections: source pod, VIP, endpoint, bytes, age' },
  { name: 'config', summary: 'where the configuration comes from; xDS state, last ACK/NACK per type' },
  { name: 'workloads', summary: 'workloads known to the agent (local ones: enrolled or not)' },
  { name: 'services', summary: 'services, their VIPs, ports and endpoints' },
  { name: 'policies', summary: 'authorization and peer authentication policies in force' },
  { name: 'certs', summary: 'workload certificates held by the agent: identity, serial, validity, state' },
  {
    name: 'trace',
    summary: 'would this connection be captured, which service, which endpoints are candidates, which policy decides and why',
    description:
      'Exit codes: 0 the connection would be captured and allowed; 1 it would not (denied, reset for want of\n' +
      'endpoints, not captured, the pod runs on another node) or the pod is unknown to the agent;\n' +
      '2 --from or --to is malformed.',
    flags: [
      { name: 'from', value: 'NAMESPACE/POD', complete: 'none', required: true, description: 'the pod that opens the connection' },
      { name: 'to', value: 'IP:PORT', complete: 'none', required: true, description: 'the address it connects to, e.g. a service VIP 10.96.0.10:80' },
    ],
  },
  {
    name: 'log',
    summary: 'log levels per component, and whether the access log is on; --level changes them at once, no restart',
    description:
      'Without --level: shows the level of each component (proxy, tunnel, xds, datapath, access, ...).\n' +
      'With it: "debug" sets every component, "proxy=debug,tunnel=warn" sets those named (levels: trace,\n' +
      'debug, info, warn, error, silent). Changes last until the agent restarts.',
    flags: [{ name: 'level', value: 'LEVEL|COMPONENT=LEVEL[,...]', complete: 'none', suggestions: ['debug', 'info', 'proxy=debug', 'tunnel=debug'], description: 'the levels to set' }],
  },
  {
    name: 'access-log',
    summary: 'turn the access log (one line per connection when it ends) on or off, no restart',
    description: 'Lasts until the agent restarts; --access-log sets the state it starts in (default on).',
    args: [{ name: 'STATE', choices: ['on', 'off'] }],
  },
  {
    name: 'resources',
    summary: 'the control plane: workloads, services and policies it serves',
    description: 'Reads the control plane\'s admin endpoint: --control, else $SLUICE_CONTROL_ADMIN, else /run/sluice/control.sock.',
  },
  {
    name: 'agents',
    summary: 'the control plane: agents connected over xDS, what each has been sent, last NACK',
    description: 'Reads the control plane\'s admin endpoint: --control, else $SLUICE_CONTROL_ADMIN, else /run/sluice/control.sock.',
  },
];

export const ctlProgram: ProgramDecl = {
  name: 'sluicectl',
  summary: 'what a sluice agent (or, with --control, the control plane) knows and decides, from its admin endpoint',
  flags: [
    { name: 'admin', value: 'SOCKET|HOST:PORT', description: "the agent's admin endpoint", default: '$SLUICE_ADMIN or /run/sluice/admin.sock' },
    { name: 'control', value: 'SOCKET|HOST:PORT', description: "ask the control plane's admin endpoint instead (status, resources, agents)" },
    { name: 'output', short: 'o', value: 'FORMAT', choices: ['table', 'json', 'yaml'], default: 'table', description: 'output format' },
  ],
  commands,
  footer:
    'Exit codes: 0 ok; 1 failure: the endpoint cannot be reached or gives an answer sluicectl does not\n' +
    'understand, or a trace verdict of "no" (see "sluicectl trace --help"); 2 invalid command line.',
};
