// sluice-agent's command line: run (the default) with the agent's flags, and
// uninstall; help, version and completion come with it.
import { type ProgramDecl } from '../command-line';
import { agentFlags } from '../config/agent-config';

export const agentProgram: ProgramDecl = {
  name: 'sluice-agent',
  summary: 'the per-node agent of the sluice mesh (eBPF capture, node proxy, tunnels, xDS client)',
  flags: [],
  commands: [
    {
      name: 'run',
      summary: 'run the agent until SIGTERM or SIGINT',
      description:
        'Needs --node-name, --bpffs, --cgroup, --proxy-address and exactly one of --control-plane or --snapshot.\n' +
        'Every flag --some-flag can also be given as the variable SLUICE_SOME_FLAG; flags win.',
      flags: agentFlags,
    },
    {
      name: 'uninstall',
      summary: "take sluice off this node: STRICT filters, capture programs and every pin under --bpffs",
      description:
        'Run in the node\'s network namespace (the agent container) after removing sluice-cni from the node, and just\n' +
        'before deleting the DaemonSet: pinned programs keep capturing after the agent is gone, and STRICT filters keep\n' +
        'dropping plaintext into pods, until this runs. Prints what it removed, as JSON.',
      flags: [{ name: 'bpffs', value: 'DIR', complete: 'directory', required: true, description: 'the agent\'s --bpffs directory (the DaemonSet: /sys/fs/bpf/sluice)' }],
    },
    {
      name: 'keep-listeners',
      summary: "hold copies of the agent's listening sockets while no agent runs, so a restart or crash refuses no connection",
      description:
        'Runs beside the agent (its own container in the DaemonSet\'s pod) until SIGTERM. Every second it asks the agent at\n' +
        '--handover-socket for copies of its listening sockets; an agent started with --listener-keeper-socket takes them\n' +
        'from here, with the connections the kernel queued meanwhile. After --give-up-seconds without an agent the copies\n' +
        'are closed, so that connections are refused rather than left waiting.',
      flags: [
        { name: 'node-name', value: 'NAME', complete: 'none', required: true, description: "the node's name (the agent's --node-name)" },
        { name: 'handover-socket', value: 'PATH', complete: 'file', required: true, description: "the agent's --handover-socket" },
        { name: 'keeper-socket', value: 'PATH', complete: 'file', required: true, description: "where agents ask for the held sockets (the agent's --listener-keeper-socket)" },
        { name: 'give-up-seconds', value: 'N', complete: 'none', default: '30', description: 'close the copies after this long without an agent' },
        agentFlags.find((f) => f.name === 'log-level')!,
      ],
    },
  ],
  defaultCommand: 'run',
  footer:
    'Every flag --some-flag can also be given as SLUICE_SOME_FLAG (flags win).\n' +
    'Exit codes: 0 stopped cleanly, 1 failed (to start or while running), 2 invalid command line or configuration.',
};
