// sluice-sim's command line. The forms below are a contract used by tests and
// outside tools (see test/unit/cli-forms.test.ts); keep them stable:
//   sluice-sim --name X up -f FILE... --nodes N
//   sluice-sim exec NAMESPACE/POD --name X -- CMD ARGS...
//   sluice-sim ctl NODE --name X -- SLUICECTL-ARGS...
//   sluice-sim status -o json --name X
import { type FlagDecl, type ProgramDecl } from '../command-line';

const files: FlagDecl = {
  name: 'filename',
  short: 'f',
  value: 'FILE',
  greedy: true,
  required: true,
  description: 'manifest file (Namespaces, Pods, Services, policies); "-f a.yaml b.yaml" takes both',
};

const ACTIONS = ['stop', 'start', 'restart'] as const;
const AGENT_ACTIONS = [...ACTIONS, 'upgrade'] as const;

export const simProgram: ProgramDecl = {
  name: 'sluice-sim',
  summary: 'a simulated cluster on this machine: nodes and pods as network namespaces, one sluice-control, one agent per node',
  flags: [{ name: 'name', value: 'NAME', complete: 'none', description: 'which simulated cluster', default: '$SLUICE_SIM_NAME or "demo"' }],
  commands: [
    {
      name: 'up',
      summary: 'start a cluster from manifests (removes what a crashed run of the same name left)',
      flags: [
        files,
        { name: 'nodes', value: 'N', complete: 'none', default: '1', description: 'number of nodes, 1-16' },
        {
          name: 'image',
          value: 'ARCHIVE',
          complete: 'file',
          description: "run the agents from this OCI image archive (npm run image) with the DaemonSet's capabilities and mounts, not as host processes",
        },
        {
          name: 'agent-manifest',
          value: 'FILE',
          complete: 'file',
          default: "the checkout's deploy/base/sluice-agent.yaml",
          description: "with --image: the manifest whose DaemonSet sluice-agent gives the agent container's capabilities",
        },
      ],
    },
    { name: 'apply', summary: 'apply manifests; returns when every agent has the change', flags: [files] },
    { name: 'delete', summary: 'delete the objects in manifests; returns when every agent has the change', flags: [files] },
    {
      name: 'exec',
      summary: "run a command in a pod's network namespace and cgroup; its exit code is passed through",
      args: [{ name: 'NAMESPACE/POD' }],
      rest: { name: 'CMD [ARGS...]', required: true },
    },
    {
      name: 'status',
      summary: 'nodes, agents, pods (enrolled?), services, every network namespace',
      flags: [{ name: 'output', short: 'o', value: 'FORMAT', choices: ['table', 'json', 'yaml'], default: 'table', description: 'output format' }],
    },
    { name: 'agent', summary: "stop, start, restart or upgrade a node's agent (upgrade: the new one takes over the old one's listeners; none refused)", args: [{ name: 'NODE' }, { name: 'ACTION', choices: AGENT_ACTIONS }] },
    { name: 'control', summary: 'stop, start or restart the control plane', args: [{ name: 'ACTION', choices: ACTIONS }] },
    {
      name: 'api-fault',
      summary: "inject a failure into the cluster's Kubernetes API (a test stand-in) to see sluice-control's informers recover",
      description:
        'watch RESOURCE FAULT: the next watch of RESOURCE (pods, services, endpointslices, ...) gets FAULT, and its open\n' +
        '  watches are closed now: close (the stream ends), gone-event (an ERROR event, 410), gone-http (HTTP 410), error (HTTP 500)\n' +
        'compact: forget the change history, so watching from an older resourceVersion is 410 Gone\n' +
        'delay MS: every answer of the API waits MS milliseconds (0: none)',
      args: [{ name: 'KIND', choices: ['watch', 'compact', 'delay'] }, { name: 'ARGS', optional: true, variadic: true }],
    },
    {
      name: 'ctl',
      summary: "run sluicectl against a node's agent",
      description: 'Example: sluice-sim ctl node-1 -- -o json status',
      args: [{ name: 'NODE' }],
      rest: { name: 'SLUICECTL-ARGS...', required: false },
    },
    { name: 'down', summary: 'remove every process, namespace, cgroup and pin of the cluster' },
  ],
  footer:
    'NAME defaults to $SLUICE_SIM_NAME or "demo". up, apply, delete, exec, agent, control and down need root.\n' +
    'Exit codes: 0 ok (exec and ctl: the exit code of what they ran), 1 failure,\n' +
    '2 invalid command line or manifests (nothing was changed).',
};
